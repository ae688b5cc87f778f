"""The one place a gateway stream is produced: headers, keepalives, the error event on
an upstream failure, and the ledger row in a `finally` whichever way the stream ends
(finished, upstream cut, client gone)."""

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Callable

from django.http import StreamingHttpResponse

from apps.core import metrics
from apps.core.errors import ApiError
from apps.core.lifecycle import after_response
from apps.providers.canonical import ChatResult, Delta, Final, Finish, Usage
from apps.providers.catalog import ModelInfo
from apps.providers.errors import UpstreamError

from .pipeline import Call, as_api_error
from .wires import Wire

log = logging.getLogger(__name__)
KEEPALIVE_SECONDS = 15.0
KEEPALIVE = b": keepalive\n\n"


class EventStream(StreamingHttpResponse):
    """A streaming response whose async generator the gateway handler drives itself, so
    that a client disconnect cancels it at once."""

    def __init__(self, events: AsyncIterator[bytes], headers: dict[str, str]):
        super().__init__(events, content_type="text/event-stream; charset=utf-8", headers={
            "Cache-Control": "no-cache", "X-Accel-Buffering": "no", **headers})
        self.events = events


async def _with_keepalives(events: AsyncIterator, interval: float):
    """The events, with None whenever `interval` seconds pass without one."""
    pending = None
    try:
        while True:
            pending = pending or asyncio.ensure_future(anext(events))
            done, _ = await asyncio.wait({pending}, timeout=interval)
            if not done:
                yield None
                continue
            try:
                event = pending.result()
            except StopAsyncIteration:
                return
            pending = None
            yield event
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)


def replay(result: ChatResult) -> AsyncIterator:
    """A finished answer (a cache hit) as the stream events of a fresh one."""

    async def events():
        for piece in re.findall(r"\S+\s*", result.content or ""):
            yield Delta(content=piece)
        for index, call in enumerate(result.tool_calls or ()):
            yield Delta(tool_calls=[{"index": index, **call}])
        yield Finish(result.finish_reason)
        yield Final(usage=result.usage, id=result.id, model=result.model)

    return events()


async def body(call: Call, wire: Wire, served: ModelInfo | None, model_id: str, first, events: AsyncIterator,
               response_id: str, created: int, include_usage: bool,
               completed: Callable[[ChatResult], None] | None = None) -> AsyncIterator[bytes]:
    """The SSE bytes of one answer. `completed` gets the whole answer when it finished
    cleanly (for the cache); streamed tool calls are not assembled, so not passed on."""
    writer = wire.writer(response_id, created, model_id, include_usage)
    status, error_type, usage, ttft_ms = 499, "client_closed", None, None
    parts, finish_reason, had_tool_calls = [], "stop", False

    async def all_events():
        yield first
        async for event in events:
            yield event

    ticks = _with_keepalives(all_events(), KEEPALIVE_SECONDS)
    try:
        yield writer.start()
        async for event in ticks:
            if event is None:
                yield KEEPALIVE
            elif isinstance(event, Delta):
                if ttft_ms is None:
                    ttft_ms = call.elapsed_ms()
                parts.append(event.content or "")
                had_tool_calls = had_tool_calls or bool(event.tool_calls)
                yield writer.delta(event)
            elif isinstance(event, Finish):
                finish_reason = event.finish_reason
                yield writer.finish(event.finish_reason)
            elif isinstance(event, Final):
                usage = event.usage
                yield writer.final(usage)
                # Billable once the last event has been handed to the server, not before.
                status, error_type = 200, ""
                if completed is not None and not had_tool_calls:
                    completed(ChatResult(id=event.id, model=model_id, content="".join(parts),
                                         finish_reason=finish_reason, usage=usage))
    except UpstreamError as error:
        # Never a clean end after a truncated answer: the client gets an error event.
        status, error_type = 502, "upstream_stream_cut"
        yield wire.stream_error(as_api_error(error))
    except Exception:
        log.exception("stream %s failed", call.request_id)
        metrics.UNHANDLED.labels(call.endpoint).inc()
        status, error_type = 500, "internal_error"
        yield wire.stream_error(ApiError(500, "The gateway failed while streaming the answer.", code="internal_error"))
    finally:
        try:
            # Inner first: the keepalive wrapper may be mid-read of the upstream stream.
            await ticks.aclose()
            await events.aclose()
        finally:
            # Its own task: a client hanging up right after the last byte must not cancel
            # the ledger row or the cache write, and the stream's end must not wait on them.
            after_response(call.finish(status=status, usage=usage or Usage(), served=served, error_type=error_type,
                                       ttft_ms=ttft_ms), call.request_id)

