"""What a request may hold, checked before any view runs (akaplatform/asgi.py).

- Headers: at most AKA_MAX_HEADERS of them and AKA_MAX_HEADER_BYTES in all, else 431.
  uvicorn with httptools accepts any number and size (a 1 MB header, 5,000 headers).
- The Host: one of ALLOWED_HOSTS on every path, as Django's stack checks it, also for
  what is served beside that stack (the gateway, the probes).
- The body: neither ASGI server bounds how long a client may take to send the body it
  announced, so `content-length: 100` and ten bytes held a connection (and a request
  task) open for ever. `bounded_receive` wraps the ASGI `receive` so the body must
  arrive within AKA_BODY_READ_TIMEOUT seconds of the first read; later reads (a
  streaming response waiting for a disconnect) are not bounded.
Headers that never finish, and connections that never send a request, are closed by the
server (akaplatform/server.py, AKA_HEADER_READ_TIMEOUT_MS) and by the proxy in front.

Each refusal is an ApiError made here, answered by `refuse` beside the gateway; the
gateway (apps/gateway/handler.py) answers the same refusals of its own requests in its
client's wire format, naming the call, as it answers everything else.
"""

import asyncio
import json
from functools import lru_cache

from django.conf import settings
from django.http.request import split_domain_port, validate_host

from .errors import ApiError


class BodyReadTimeout(Exception):
    pass


def bounded_receive(receive):
    deadline: float | None = None
    complete = False

    async def bounded():
        nonlocal deadline, complete
        if complete:
            return await receive()
        loop = asyncio.get_running_loop()
        deadline = deadline or loop.time() + settings.AKA_BODY_READ_TIMEOUT
        try:
            async with asyncio.timeout_at(deadline):
                message = await receive()
        except TimeoutError:
            raise BodyReadTimeout from None
        complete = message["type"] != "http.request" or not message.get("more_body")
        return message

    return bounded


def host_allowed(scope) -> bool:
    return _allowed(_host(scope))


def _host(scope) -> str:
    for name, value in scope["headers"]:
        if name == b"host":
            return value.decode("latin-1")
    server = scope.get("server") or ("", None)
    return f"{server[0]}:{server[1]}" if server[1] else server[0]


@lru_cache(maxsize=256)
def _allowed(host: str) -> bool:
    """Django's ALLOWED_HOSTS rule (HttpRequest.get_host); cached per distinct Host
    value, bounded."""
    domain, _port = split_domain_port(host)
    allowed = settings.ALLOWED_HOSTS or (["localhost", ".localhost", "127.0.0.1", "[::1]"] if settings.DEBUG else [])
    return bool(domain) and validate_host(domain, allowed)


def headers_too_large(scope) -> bool:
    headers = scope["headers"]
    return (len(headers) > settings.AKA_MAX_HEADERS
            or sum(len(name) + len(value) for name, value in headers) > settings.AKA_MAX_HEADER_BYTES)


def headers_refused() -> ApiError:
    return ApiError(431, "Too many request headers, or too large.", code="headers_too_large")


def host_refused() -> ApiError:
    return ApiError(400, "Invalid Host header: this server does not serve this host name.", code="invalid_host")


def body_timeout() -> ApiError:
    return ApiError(408, "The request body did not arrive in time.", code="body_timeout")


async def refuse(send, error: ApiError) -> None:
    """A JSON error that closes the connection (whatever the client sent after it, an
    unread body for one, would be taken for the next request)."""
    body = json.dumps({"error": {"message": error.message, "type": "invalid_request_error", "code": error.code}})
    await send({"type": "http.response.start", "status": error.status, "headers": [
        (b"content-type", b"application/json"), (b"connection", b"close"),
        (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body.encode()})
