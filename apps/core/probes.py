"""/healthz and /metrics, answered beside Django's stack (akaplatform/asgi.py).

Through that stack the first probe or scrape loaded the site's whole URLconf: the admin,
DRF, drf-spectacular, Stripe and what they import, 19 MB in every worker, including one
that serves nothing but /v1/ (bench/startup.py). The views are the same ones the URLconf
routes (the health check gives its database connection back itself, apps.core.orm);
here they get the Host check Django would make, and nothing else.
"""

import io

from django.core.handlers.asgi import ASGIRequest

from . import views
from .request_limits import host_allowed, host_refused, refuse

PROBES = {"/healthz": views.healthz, "/metrics": views.metrics_view}


async def probe(scope, receive, send) -> None:
    if not host_allowed(scope):
        await refuse(send, host_refused())
        return
    response = await PROBES[scope["path"]](ASGIRequest(scope, io.BytesIO()))
    await send({"type": "http.response.start", "status": response.status_code,
                "headers": [(name.encode("latin-1"), value.encode("latin-1")) for name, value in response.items()]})
    await send({"type": "http.response.body", "body": response.content})
