"""What every adapter shares: the HTTP call, error classification and SSE reading."""

import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import aiohttp
import orjson

from apps.core.llm import ChatRequest, ChatResult, Delta, Final, Finish

from ..catalog import ModelInfo
from ..errors import UpstreamError
from ..http import client, timeout
from ..upstreams import Upstream, stall_timeout, upstream_for

StreamEvent = Delta | Finish | Final


# What a failed exchange with an upstream raises (connection refused or dropped, a timeout).
TRANSPORT_ERRORS = (aiohttp.ClientError, OSError, TimeoutError)


def _retry_after(response: aiohttp.ClientResponse) -> float | None:
    """Seconds to wait, from Retry-After in seconds or as an HTTP date; None when absent
    or unreadable (NaN would reach asyncio.sleep, which refuses it)."""
    value = (response.headers.get("retry-after") or "").strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError):
            return None
    return max(seconds, 0.0) if math.isfinite(seconds) else None


def error_from_response(response: aiohttp.ClientResponse, body: bytes) -> UpstreamError:
    status = response.status
    try:
        detail = orjson.loads(body)
        err = detail.get("error", detail)
        message = err.get("message") if isinstance(err, dict) else str(err)
    except (orjson.JSONDecodeError, AttributeError):
        message = body[:200].decode(errors="replace")
    message = message or f"upstream answered {status}"
    if status == 429 or status >= 500 or status == 408:
        return UpstreamError(502, message, retryable=True, retry_after=_retry_after(response), upstream_status=status)
    if status in (400, 413, 422):
        # The request itself is at fault; another model would refuse it too.
        return UpstreamError(400, message, retryable=False, upstream_status=status, kind="upstream_rejected")
    # 401/403/404 and the rest: this provider can't serve us; a fallback may.
    return UpstreamError(502, message, retryable=False, upstream_status=status, kind="upstream_unavailable")


def error_from_exception(exc: Exception) -> UpstreamError:
    # aiohttp's connect and read (stall) timeouts are TimeoutErrors; a dropped or refused
    # connection is not, and another attempt may succeed.
    if isinstance(exc, TimeoutError):
        return UpstreamError(504, f"upstream timed out ({exc.__class__.__name__})", retryable=False,
                             kind="upstream_timeout")
    return UpstreamError(502, f"upstream connection failed ({exc.__class__.__name__})", retryable=True)


# What reading a provider's 200 answer or stream chunk raises when it is not what the
# reader needs (not JSON, a list where an object belongs, a field missing or of another type).
UNREADABLE_ERRORS = (ValueError, KeyError, IndexError, TypeError, AttributeError)   # JSONDecodeError is a ValueError


def unreadable(exc: Exception) -> UpstreamError:
    # The provider's fault, not the request's: another attempt or model may answer.
    return UpstreamError(502, f"unreadable upstream answer ({exc})", retryable=True)


def read_answer(read, answer):
    """`read(answer)`, or a 502 when the provider's 200 answer is not what it needs."""
    try:
        return read(answer)
    except UNREADABLE_ERRORS as exc:
        raise unreadable(exc) from exc


class Adapter:
    provider: str
    counts_tokens = False   # whether the provider has an endpoint that counts a request's input tokens

    def __init__(self, provider: str):
        self.provider = provider

    # --- to implement -------------------------------------------------------------
    def url(self, upstream: Upstream, model: ModelInfo, stream: bool) -> str:
        raise NotImplementedError

    def headers(self, upstream: Upstream) -> dict[str, str]:
        raise NotImplementedError

    def payload(self, req: ChatRequest, model: ModelInfo) -> dict:
        raise NotImplementedError

    def parse(self, body: dict, model: ModelInfo) -> ChatResult:
        raise NotImplementedError

    def events(self, lines: AsyncIterator[tuple[str, bytes]], model: ModelInfo) -> AsyncIterator[StreamEvent]:
        """Canonical events from the provider's SSE (event name, data) pairs."""
        raise NotImplementedError

    def count_url(self, upstream: Upstream, model: ModelInfo) -> str:   # when counts_tokens
        raise NotImplementedError

    def count_payload(self, req: ChatRequest, model: ModelInfo) -> dict:
        raise NotImplementedError

    def count_of(self, body: dict) -> int:
        raise NotImplementedError

    # --- shared -------------------------------------------------------------------
    async def post(self, url: str, payload: dict, upstream: Upstream, model: ModelInfo) -> dict:
        """The provider's JSON answer to one POST; UpstreamError when the exchange fails,
        the provider refuses, or the answer is not JSON."""
        try:
            async with client().post(url, data=orjson.dumps(payload), headers=self.headers(upstream),
                                     timeout=timeout(stall_timeout(model.id))) as response:
                body = await response.read()
        except TRANSPORT_ERRORS as exc:
            raise error_from_exception(exc) from exc
        if response.status != 200:
            raise error_from_response(response, body)
        return read_answer(orjson.loads, body)

    async def complete(self, req: ChatRequest, model: ModelInfo) -> ChatResult:
        upstream = upstream_for(self.provider)
        body = await self.post(self.url(upstream, model, stream=False), self.payload(req, model), upstream, model)
        return read_answer(lambda answer: self.parse(answer, model), body)

    async def count_tokens(self, req: ChatRequest, model: ModelInfo) -> int:
        """The input tokens of `req` for `model`, as its provider counts them."""
        upstream = upstream_for(self.provider)
        body = await self.post(self.count_url(upstream, model), self.count_payload(req, model), upstream, model)
        return read_answer(lambda answer: int(self.count_of(answer)), body)

    async def stream(self, req: ChatRequest, model: ModelInfo) -> AsyncIterator[StreamEvent]:
        """Canonical stream events. Failing before the first event raises UpstreamError
        (the caller may retry or fall back); failing later raises it mid-stream."""
        upstream = upstream_for(self.provider)
        try:
            response = await client().post(self.url(upstream, model, stream=True), data=orjson.dumps(self.payload(req, model)),
                                           headers=self.headers(upstream), timeout=timeout(stall_timeout(model.id)))
        except TRANSPORT_ERRORS as exc:
            raise error_from_exception(exc) from exc
        finished = False
        try:
            if response.status != 200:
                raise error_from_response(response, await response.read())
            async for event in self.events(sse_pairs(response), model):
                if isinstance(event, Final):
                    finished = True
                yield event
            if not finished:
                raise UpstreamError(502, "upstream stream ended before the answer was complete", retryable=False)
        except TRANSPORT_ERRORS as exc:
            raise error_from_exception(exc) from exc
        except UNREADABLE_ERRORS as exc:
            # A chunk the adapter cannot read (a proxy's HTML page, a field missing or of
            # another type) fails like an unreadable whole answer, not as our bug.
            raise unreadable(exc) from exc
        finally:
            # Closing the connection of a stream left unfinished (cancelled, failed) stops
            # the provider generating (and billing) tokens; a finished one goes back to the pool.
            if finished:
                response.release()
            else:
                response.close()


async def lines(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """The body's lines without their line ends, however the chunks cut them."""
    rest = b""
    async for chunk in response.content.iter_any():
        rest += chunk
        *whole, rest = rest.split(b"\n")
        for line in whole:
            yield line.removesuffix(b"\r")
    if rest:
        yield rest.removesuffix(b"\r")


async def sse_pairs(response: aiohttp.ClientResponse) -> AsyncIterator[tuple[str, bytes]]:
    """(event, data) pairs of a server-sent event stream; `event` is "" when unnamed."""
    event, data = "", []
    async for line in lines(response):
        if not line:
            if data:
                yield event, b"\n".join(data)
            event, data = "", []
        elif line.startswith(b"data:"):
            data.append(line[5:].lstrip())
        elif line.startswith(b"event:"):
            event = line[6:].strip().decode()
    if data:
        yield event, b"\n".join(data)
