"""/healthz and /metrics, answered beside Django's stack (akaplatform/asgi.py).

Through that stack the first probe or scrape loaded the site's whole URLconf: the admin,
DRF, drf-spectacular, Stripe and what they import, 19 MB in every worker, including one
that serves nothing but /v1/ (bench/startup.py). The views are the same ones the URLconf
routes; here they get the Host check Django would make and the connection handling of a
request's start and end, and nothing else.
"""

import io

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.db import close_old_connections

from . import views
from .request_limits import host_allowed, refuse

PROBES = {"/healthz": views.healthz, "/metrics": views.metrics_view}


async def probe(scope, receive, send) -> None:
    if not host_allowed(scope):
        await refuse(send, 400, "Invalid Host header.", "invalid_host")
        return
    # As Django's handler does with its request signals: the health check's database
    # connection is dropped if broken or past CONN_MAX_AGE, on the thread that uses it.
    await sync_to_async(close_old_connections)()
    try:
        response = await PROBES[scope["path"]](ASGIRequest(scope, io.BytesIO()))
    finally:
        await sync_to_async(close_old_connections)()
    await send({"type": "http.response.start", "status": response.status_code,
                "headers": [(name.encode("latin-1"), value.encode("latin-1")) for name, value in response.items()]})
    await send({"type": "http.response.body", "body": response.content})
