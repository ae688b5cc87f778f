import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "akaplatform.settings")

django_application = get_asgi_application()

# Both need Django set up first.
from apps.core.lifecycle import lifespan  # noqa: E402
from apps.gateway.handler import GatewayHandler  # noqa: E402

gateway_application = GatewayHandler()


async def application(scope, receive, send):
    # /v1/ is the gateway's hot path, served by its own lean handler; everything else
    # (dashboard, management API, admin, health) by Django's full stack. Lifespan
    # events run the apps' start-up and shut-down hooks.
    if scope["type"] == "http" and scope["path"].startswith("/v1/"):
        await gateway_application(scope, receive, send)
    elif scope["type"] == "lifespan":
        await lifespan(receive, send)
    else:
        await django_application(scope, receive, send)
