"""Server-sent events for the gateway's streamed answers: the headers, keepalives, the
error event on an upstream failure, and what the stream tells the call (first-token
time, usage, status, the whole answer) whichever way it ends. The call itself is ended
by the pipeline's record stage once the handler has sent the last byte."""

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable

from apps.core import metrics
from apps.core.errors import ApiError
from apps.core.llm import ChatRequest, ChatResult, Delta, Final, Finish
from apps.providers import dispatch
from apps.providers.errors import UpstreamError

from .call import Call

log = logging.getLogger(__name__)
HEADERS = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", "x-accel-buffering": "no"}
KEEPALIVE_SECONDS = 15.0
KEEPALIVE = b": keepalive\n\n"


async def prepend(first, events: AsyncIterator) -> AsyncIterator:
    """`first`, then the rest of `events` (closed with this iterator)."""
    try:
        yield first
        async for event in events:
            yield event
    finally:
        await events.aclose()


async def replay(result: ChatResult) -> AsyncIterator:
    """A finished answer (a cache hit) as the stream events of a fresh one."""
    for piece in re.findall(r"\S+\s*", result.content or ""):
        yield Delta(content=piece)
    for index, call in enumerate(result.tool_calls or ()):
        yield Delta(tool_calls=[{"index": index, **call}])
    yield Finish(result.finish_reason, result.stop_sequence)
    yield Final(usage=result.usage, id=result.id, model=result.model)


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


async def body(call: Call, req: ChatRequest, writer, stream_error: Callable[[ApiError], bytes], events: AsyncIterator,
               before_end: Callable[[Call], Awaitable[None]]) -> AsyncIterator[bytes]:
    """The SSE bytes of one answer to `req`. Streamed tool calls are not assembled, so an
    answer with them is not kept for the cache. `before_end` runs just before the last
    event goes out (the ledger's promise of the row)."""
    parts, finish, had_tool_calls = [], Finish("stop"), False
    ticks = _with_keepalives(events, KEEPALIVE_SECONDS)
    try:
        yield writer.start()
        async for event in ticks:
            if event is None:
                yield KEEPALIVE
            elif isinstance(event, Delta):
                if call.ttft_ms is None:
                    call.ttft_ms = call.elapsed_ms()
                parts.append(event.content or "")
                had_tool_calls = had_tool_calls or bool(event.tool_calls)
                yield writer.delta(event)
            elif isinstance(event, Finish):
                finish = event
                yield writer.finish(event)
            elif isinstance(event, Final):
                call.usage = event.usage  # charged whether or not the client reads the end
                await before_end(call)
                yield writer.final(event.usage)
                # Billable once the last event has been handed to the server, not before.
                call.status, call.error_type = 200, ""
                if not had_tool_calls:
                    call.answer = ChatResult(id=event.id, model=call.served.id if call.served else event.model,
                                             content="".join(parts),
                                             finish_reason=finish.finish_reason, usage=event.usage,
                                             stop_sequence=finish.stop_sequence)
    except UpstreamError as error:
        # Never a clean end after a truncated answer: the client gets an error event.
        stalled = error.kind == "upstream_timeout"  # no chunk within the model's stall timeout
        call.status, call.error_type = (504, "upstream_stream_stalled") if stalled else (502, "upstream_stream_cut")
        dispatch.failed(call.outcome, call.served, error)   # only an upstream's stream fails so, never a replay
        yield stream_error(error.as_api_error())
    except Exception:
        log.exception("stream %s failed", call.request_id)
        metrics.UNHANDLED.labels(call.endpoint).inc()
        call.status, call.error_type = 500, "internal_error"
        yield stream_error(ApiError(500, "The gateway failed while streaming the answer.", code="internal_error"))
    finally:
        # Inner first: the keepalive wrapper may be mid-read of the upstream stream.
        await ticks.aclose()
        await events.aclose()
        if call.usage is None and call.served is not None and not call.hit:
            # An upstream's stream that did not finish (it was cut, or the client left): the
            # provider still charged for the input and the output it sent. Usage comes only with
            # the Final event, so the input is our estimate.
            call.usage = dispatch.cut_short(req.estimated_prompt_tokens(), parts)
