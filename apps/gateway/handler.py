"""A lean ASGI handler for the gateway's /v1/ endpoints.

Django's stock ASGIHandler runs the site's middleware and hops to a thread several times
per request (signals, response.close), which caps a process at a few hundred calls per
second. Gateway views need none of that: they authenticate by API key, touch no
session, and do their database work on their own pools. This handler looks the path up
among the gateway's URLs, awaits the async view directly with what it reads of the
request (every view answers through apps.gateway.pipeline), checks the request's
headers and bounds its body before reading it (apps.core.request_limits; a refusal is
in the client's wire format, as every answer is), sends the answer
(driving event streams itself, so a client disconnect cancels the stream and the
upstream call at once), and then ends the call off the client's connection. From the end
of the body on it watches for the client hanging up: a whole answer whose client left
while it was made is not sent and is recorded as abandoned (499, not billed), as a
stream's is; an SDK that times out and retries would otherwise pay for every attempt.
(With HTTP pipelining uvicorn tells only the newest request of a connection that the
client left; an earlier one still in flight is answered and billed.)
"""

import asyncio
import logging
import re

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.urls import get_resolver
from django.urls.resolvers import RoutePattern, URLPattern

from apps.core import metrics
from apps.core.errors import ApiError
from apps.core.lifecycle import after_response
from apps.core.request_limits import BodyReadTimeout, body_timeout, headers_refused, headers_too_large, host_allowed, host_refused

from . import pipeline, startup  # noqa: F401  (startup registers the warm-up hook)
from .call import Call
from .pipeline import Answer
from .wires import for_path

log = logging.getLogger(__name__)
URLCONF = "apps.gateway.urls"
OTHER_ENDPOINTS = {"/v1/embeddings": "embeddings", "/v1/models": "models", "/v1/feedback": "feedback",
                   "/v1/messages/count_tokens": "count_tokens"}


class Request:
    """What the gateway's views read of a request. Django's ASGIRequest (its META, then
    its header mapping) and URL resolver took about 40 us of a call's CPU, a tenth of
    a worker's on the miss path."""

    __slots__ = ("method", "path", "headers", "body")

    def __init__(self, scope, body: bytes):
        self.method, self.path, self.body = scope["method"], scope["path"], body
        self.headers = Headers(scope["headers"])


class Headers(dict):
    """Header values by lower-cased name (ASGI sends names lower-cased), read
    case-insensitively as Django's request.headers; a repeated header's values joined
    with commas, as Django does."""

    def __init__(self, raw: list[tuple[bytes, bytes]]):
        super().__init__()
        for name, value in raw:
            key, text = name.decode("latin-1").lower(), value.decode("latin-1")
            self[key] = f"{self[key]},{text}" if key in self else text

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def __contains__(self, name) -> bool:
        return super().__contains__(name.lower()) if isinstance(name, str) else False

    def get(self, name: str, default=None):
        return super().get(name.lower(), default)


class BodyTooLarge(Exception):
    pass


class ClientGone(Exception):
    pass


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


async def _closing(call: Call, wire, error: ApiError) -> Answer:
    """A refusal that closes the connection: the rest of the request's body, which was
    not read, would be read as the next request."""
    answer = await pipeline.refuse(call, wire, error)
    answer.headers["connection"] = "close"
    return answer


def _headers(answer: Answer) -> list[tuple[bytes, bytes]]:
    # Every answer, whatever became of the call, names it: OpenAI's SDKs read x-request-id, Anthropic's request-id.
    request_id = answer.call.request_id.encode()
    return [(b"x-request-id", request_id), (b"request-id", request_id),
            *((name.encode("latin-1"), value.encode("latin-1")) for name, value in answer.headers.items())]


async def _watch(receive) -> None:
    """Returns when the client hangs up (called once the request body has been read)."""
    while (await receive())["type"] != "http.disconnect":
        pass


def _stop(watcher: asyncio.Task) -> None:
    """Cancels the watcher, or reads how it ended (so a failed receive() is not reported
    as a task exception never retrieved)."""
    if not watcher.done():
        watcher.cancel()
    elif not watcher.cancelled():
        watcher.exception()


async def _stream(answer: Answer, watcher: asyncio.Task, send) -> None:
    """Sends the stream's chunks until it ends or the client disconnects (`watcher` ends);
    on a disconnect the producing generator is cancelled and closed at once."""

    async def pump():
        async for chunk in answer.events:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    await send({"type": "http.response.start", "status": answer.status, "headers": _headers(answer)})
    producer = asyncio.create_task(pump())
    try:
        await asyncio.wait({producer, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (producer, watcher):
            if not task.done():
                task.cancel()
        results = await asyncio.gather(producer, watcher, return_exceptions=True)
        # A generator cancelled while suspended at a yield is closed here, not by the GC.
        await answer.events.aclose()
        if isinstance(results[0], Exception) and not isinstance(results[0], OSError):
            log.error("gateway stream failed", exc_info=results[0])
            metrics.UNHANDLED.labels("stream").inc()


async def _send(answer: Answer, watcher: asyncio.Task | None, send) -> None:
    """`watcher`: done once the client has hung up; None when the body was not read whole."""
    if answer.events is not None:
        await _stream(answer, watcher, send)
        return
    gone = watcher is not None and watcher.done()
    if not gone:
        await pipeline.promise(answer.call)  # the row outlives this process before the client has the answer
        gone = watcher is not None and watcher.done()
    if gone:   # before the answer could go out (if while its row was promised, `end` records it as it ended)
        pipeline.abandoned(answer.call)
        return
    headers = [*_headers(answer), (b"content-length", str(len(answer.body)).encode())]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})


class GatewayHandler:
    def __init__(self) -> None:
        # The gateway's URLs are found by a dict lookup: plain paths by the whole path, and
        # paths whose one parameter is their whole last segment (v1/models/<str:model>) by
        # what comes before it. Anything else could never match, or match the wrong way.
        self.views, self.last_segment = {}, {}
        for p in get_resolver(URLCONF).url_patterns:
            route = str(p.pattern) if isinstance(p, URLPattern) and isinstance(p.pattern, RoutePattern) else None
            if route is not None and not p.pattern.converters:
                self.views["/" + route] = p.callback
                continue
            head, _, last = (route or "").rpartition("/")
            if (route is None or "<" in head or not re.fullmatch(r"<(?:\w+:)?\w+>", last)
                    or "/" + head + "/" in self.last_segment
                    or re.fullmatch(next(iter(p.pattern.converters.values())).regex, "a/b")):   # takes a slash too
                raise ImproperlyConfigured(f"{URLCONF} may hold only plain path() routes, or ones whose only "
                                           "parameter is their whole last segment, one per prefix; no regexes.")
            (name, converter), = p.pattern.converters.items()
            self.last_segment["/" + head + "/"] = (p.callback, name, converter)
        if any(path.rpartition("/")[0] + "/" in self.last_segment for path in self.views):
            # Django would try the routes in order; the lookup tries the plain one first.
            raise ImproperlyConfigured(f"{URLCONF}: a plain route lies under a parameter's prefix.")

    def _find(self, path: str):
        """The view for `path` and its keyword arguments, or (None, None)."""
        view = self.views.get(path)
        if view is not None:
            return view, {}
        head, _, last = path.rpartition("/")
        found = self.last_segment.get(head + "/")
        if found is None or not re.fullmatch(found[2].regex, last):
            return None, None
        view, name, converter = found
        try:
            return view, {name: converter.to_python(last)}
        except ValueError:   # as Django's resolver reads it: no match
            return None, None

    def _endpoint(self, path: str, wire) -> str:
        """The call's metric label, of a bounded set: /v1/models/{model} counts as models.
        A chat call's path costs two dict reads."""
        label = OTHER_ENDPOINTS.get(path)
        if label is None and path not in self.views:
            head = path.rpartition("/")[0]
            label = OTHER_ENDPOINTS.get(head) if head + "/" in self.last_segment else None
        return label or wire.endpoint

    async def _answer(self, scope, receive) -> tuple[Answer | None, asyncio.Task | None]:
        """The answer, and the task that ends when the client hangs up (watching from the end
        of the request body on; None when the body was not read whole)."""
        wire = for_path(scope["path"])
        endpoint = self._endpoint(scope["path"], wire)
        if headers_too_large(scope):
            return await _closing(Call(endpoint=endpoint), wire, headers_refused()), None
        if not host_allowed(scope):
            return await pipeline.refuse(Call(endpoint=endpoint), wire, host_refused()), None
        try:
            body = await _read_body(scope, receive, settings.AKA_MAX_BODY_BYTES)
        except ClientGone:
            return None, None
        except BodyReadTimeout:
            return await _closing(Call(endpoint=endpoint), wire, body_timeout()), None
        except BodyTooLarge:
            return await pipeline.refuse(Call(endpoint=endpoint), wire, ApiError(
                413, f"Request body is larger than the limit of {settings.AKA_MAX_BODY_BYTES} bytes.",
                code="request_too_large")), None
        watcher = asyncio.create_task(_watch(receive))
        try:
            return await self._view(scope, body, wire, endpoint), watcher
        except BaseException:
            _stop(watcher)
            raise

    async def _view(self, scope, body: bytes, wire, endpoint: str) -> Answer:
        view, kwargs = self._find(scope["path"])
        if view is None:
            return await pipeline.refuse(Call(endpoint=endpoint), wire, ApiError(
                404, f"Unknown endpoint: {scope['method']} {scope['path']}", code="unknown_url"))
        try:
            return await view(Request(scope, body), **kwargs)
        except Exception as exc:  # views answer their own failures; this is the last line for a bug
            return await pipeline.refuse(Call(endpoint=endpoint), wire, exc)

    async def __call__(self, scope, receive, send) -> None:
        answer, watcher = await self._answer(scope, receive)
        if answer is None:
            return
        try:
            await _send(answer, watcher, send)
        finally:
            if watcher is not None:
                _stop(watcher)
            # In its own task: neither its time nor a failure of its own reaches this
            # connection or the next request on it.
            after_response(pipeline.end(answer.call), answer.call.request_id)
