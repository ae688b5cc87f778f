"""A lean ASGI handler for the gateway's /v1/ endpoints.

Django's stock ASGIHandler runs the site's middleware and hops to a thread several times
per request (signals, response.close), which caps a process at a few hundred calls per
second. Gateway views need none of that: they authenticate by API key, touch no
session, and do their database work on their own pools. This handler resolves the
gateway's URLs and awaits the async view directly, bounds the request body before
reading it, and drives event streams itself so a client disconnect cancels the stream
(and, through it, the upstream call) at once.
"""

import asyncio
import io
import logging
import uuid

import orjson
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.urls import Resolver404, get_resolver

from apps.core import metrics
from apps.core.errors import ApiError
from apps.core.lifecycle import after_response

from . import startup  # noqa: F401  (registers the warm-up hook)
from .sse import EventStream

log = logging.getLogger(__name__)
URLCONF = "apps.gateway.urls"


class BodyTooLarge(Exception):
    pass


class ClientGone(Exception):
    pass


def _error_bytes(scope, err: ApiError) -> bytes:
    if scope["path"].startswith("/v1/messages"):
        return orjson.dumps(err.anthropic_body())
    return orjson.dumps(err.openai_body())


async def _send_error(scope, send, err: ApiError) -> None:
    request_id = "req_" + uuid.uuid4().hex
    await send({"type": "http.response.start", "status": err.status,
                "headers": [(b"content-type", b"application/json"), (b"x-request-id", request_id.encode())]})
    await send({"type": "http.response.body", "body": _error_bytes(scope, err)})


def _endpoint(scope) -> str:
    return scope["path"].removeprefix("/v1/").strip("/").replace("/", ".") or "v1"


async def _read_body(scope, receive, limit: int) -> bytes:
    for name, value in scope["headers"]:
        if name == b"content-length" and int(value or 0) > limit:
            raise BodyTooLarge
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _headers(response) -> list[tuple[bytes, bytes]]:
    return [(name.encode("latin-1"), str(value).encode("latin-1")) for name, value in response.items()]


async def _stream(response: EventStream, receive, send) -> None:
    """Sends the stream's chunks until it ends or the client disconnects; on a
    disconnect the producing generator is cancelled so its `finally` runs now."""

    async def pump():
        async for chunk in response.events:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def watch():
        while (await receive())["type"] != "http.disconnect":
            pass

    await send({"type": "http.response.start", "status": response.status_code, "headers": _headers(response)})
    producer, watcher = asyncio.create_task(pump()), asyncio.create_task(watch())
    try:
        await asyncio.wait({producer, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (producer, watcher):
            if not task.done():
                task.cancel()
        results = await asyncio.gather(producer, watcher, return_exceptions=True)
        if isinstance(results[0], Exception) and not isinstance(results[0], OSError):
            log.error("gateway stream failed", exc_info=results[0])
            metrics.UNHANDLED.labels("stream").inc()


class GatewayHandler:
    def __init__(self) -> None:
        self.resolver = get_resolver(URLCONF)

    async def __call__(self, scope, receive, send) -> None:
        try:
            body = await _read_body(scope, receive, settings.AKA_MAX_BODY_BYTES)
        except BodyTooLarge:
            await _send_error(scope, send, ApiError(
                413, f"Request body is larger than the limit of {settings.AKA_MAX_BODY_BYTES} bytes.",
                code="request_too_large"))
            return
        except ClientGone:
            return
        try:
            match = self.resolver.resolve(scope["path"])
        except Resolver404:
            await _send_error(scope, send, ApiError(404, f"Unknown endpoint: {scope['method']} {scope['path']}",
                                                    code="unknown_url"))
            return
        request = ASGIRequest(scope, io.BytesIO(body))
        try:
            response = await match.func(request, *match.args, **match.kwargs)
        except Exception:
            # Views answer their own errors; this is the last line for a bug in one.
            log.exception("gateway view failed")
            metrics.UNHANDLED.labels(_endpoint(scope)).inc()
            metrics.REQUESTS.labels(_endpoint(scope), "500").inc()
            await _send_error(scope, send, ApiError(500, "The gateway failed to process the request.",
                                                    code="internal_error"))
            return
        if isinstance(response, EventStream):
            await _stream(response, receive, send)
            return
        await send({"type": "http.response.start", "status": response.status_code, "headers": _headers(response)})
        await send({"type": "http.response.body", "body": response.content})
        after = getattr(response, "after", None)
        if after is not None:
            # The ledger row and cache write: in their own task, so neither their time nor a
            # failure of theirs reaches this connection or the next request on it.
            after_response(after(), response.get("x-request-id", ""))
