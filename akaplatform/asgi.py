import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "akaplatform.settings")

django_application = get_asgi_application()

# The embedding model loads on a thread of its own while the rest is imported.
from apps.gateway.startup import preload  # noqa: E402

preload()

# All need Django set up first.
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles import finders  # noqa: E402
from servestatic import ServeStaticASGI  # noqa: E402

from apps.core.lifecycle import lifespan  # noqa: E402
from apps.core.probes import PROBES, probe  # noqa: E402
from apps.core.request_limits import (  # noqa: E402
    BodyReadTimeout,
    body_timeout,
    bounded_receive,
    headers_refused,
    headers_too_large,
    refuse,
)
from apps.gateway.handler import GatewayHandler  # noqa: E402

gateway_application = GatewayHandler()


def static_files() -> ServeStaticASGI:
    """STATIC_URL's files, from STATIC_ROOT (filled by collectstatic) in production. In
    development straight from the folders Django's finders search, looked up per request
    and never cached, so no collectstatic is needed and an edited stylesheet shows on reload."""
    if not settings.DEBUG:
        return ServeStaticASGI(None, root=settings.STATIC_ROOT, prefix=settings.STATIC_URL)
    static = ServeStaticASGI(None, autorefresh=True, max_age=0)
    # servestatic tries the folder added last first; Django's finders take the first match.
    for finder in reversed(list(finders.get_finders())):
        for storage in reversed(finder.storages.values()):
            static.add_files(storage.location, prefix=settings.STATIC_URL + (getattr(storage, "prefix", None) or ""))
    return static


static_application = static_files()


async def application(scope, receive, send):
    # /v1/ is the gateway's hot path, served by its own lean handler; everything else
    # (dashboard, management API, admin) by Django's full stack, apart from static
    # files, which servestatic answers before Django sees them, and the probes
    # (apps/core/probes.py). Lifespan events run the apps' start-up and shut-down hooks.
    # `//v1/...` too, so a client's doubled slash gets the gateway's JSON 404, not a page.
    # The gateway checks the header limit itself, to refuse in its client's wire format.
    if scope["type"] == "http":
        receive = bounded_receive(receive)
    if scope["type"] == "http" and scope["path"].lstrip("/").startswith("v1/"):
        await gateway_application(scope, receive, send)
    elif scope["type"] == "http" and headers_too_large(scope):
        await refuse(send, headers_refused())
    elif scope["type"] == "http" and scope["path"] in PROBES:
        await probe(scope, receive, send)
    elif scope["type"] == "lifespan":
        await lifespan(receive, send)
    elif scope["type"] == "http" and scope["path"].startswith(settings.STATIC_URL):
        await static_application(scope, receive, send)
    else:
        await _django(scope, receive, send)


async def _django(scope, receive, send) -> None:
    started = False

    async def tracked_send(message) -> None:
        nonlocal started
        started = started or message["type"] == "http.response.start"
        await send(message)

    try:
        await django_application(scope, receive, tracked_send)
    except BodyReadTimeout:
        if not started:
            await refuse(send, body_timeout())
