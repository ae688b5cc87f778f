"""What every adapter shares: the HTTP call, error classification and SSE reading."""

import contextlib
from collections.abc import AsyncIterator

import httpx
import orjson
from django.conf import settings

from apps.core.llm import ChatRequest, ChatResult, Delta, Final, Finish

from ..catalog import ModelInfo
from ..errors import UpstreamError
from ..http import client
from ..upstreams import Upstream, stall_timeout, upstream_for

StreamEvent = Delta | Finish | Final


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return float(value) if value else None
    except ValueError:
        return None


def error_from_response(response: httpx.Response, body: bytes) -> UpstreamError:
    status = response.status_code
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
    # The aiohttp transport reports a dropped connection as a ConnectTimeout; the
    # underlying cause says whether time really ran out.
    cause = exc.__cause__ or exc
    if isinstance(exc, httpx.TimeoutException) and isinstance(cause, TimeoutError | httpx.TimeoutException):
        return UpstreamError(504, f"upstream timed out ({exc.__class__.__name__})", retryable=False,
                             kind="upstream_timeout")
    return UpstreamError(502, f"upstream connection failed ({exc.__class__.__name__})", retryable=True)


def _timeout(model: ModelInfo) -> httpx.Timeout:
    # httpx's read timeout bounds each wait for bytes: the first byte and every gap after it.
    return httpx.Timeout(connect=settings.AKA_UPSTREAM_CONNECT_TIMEOUT, read=stall_timeout(model.id),
                         write=10.0, pool=10.0)


class Adapter:
    provider: str

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

    # --- shared -------------------------------------------------------------------
    async def complete(self, req: ChatRequest, model: ModelInfo) -> ChatResult:
        upstream = upstream_for(self.provider)
        try:
            response = await client().post(
                self.url(upstream, model, stream=False),
                content=orjson.dumps(self.payload(req, model)),
                headers=self.headers(upstream),
                timeout=_timeout(model),
            )
        except httpx.HTTPError as exc:
            raise error_from_exception(exc) from exc
        if response.status_code != 200:
            raise error_from_response(response, response.content)
        try:
            return self.parse(orjson.loads(response.content), model)
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
            raise UpstreamError(502, f"unreadable upstream answer ({exc})", retryable=True) from exc

    async def stream(self, req: ChatRequest, model: ModelInfo) -> AsyncIterator[StreamEvent]:
        """Canonical stream events. Failing before the first event raises UpstreamError
        (the caller may retry or fall back); failing later raises it mid-stream."""
        upstream = upstream_for(self.provider)
        request = client().build_request(
            "POST",
            self.url(upstream, model, stream=True),
            content=orjson.dumps(self.payload(req, model)),
            headers=self.headers(upstream),
            timeout=_timeout(model),
        )
        try:
            response = await client().send(request, stream=True)
        except httpx.HTTPError as exc:
            raise error_from_exception(exc) from exc
        try:
            if response.status_code != 200:
                raise error_from_response(response, await response.aread())
            finished = False
            async for event in self.events(sse_pairs(response), model):
                if isinstance(event, Final):
                    finished = True
                yield event
            if not finished:
                raise UpstreamError(502, "upstream stream ended before the answer was complete", retryable=False)
        except httpx.HTTPError as exc:
            raise error_from_exception(exc) from exc
        finally:
            # Closing the response closes the upstream connection: a cancelled stream
            # stops the provider generating (and billing) tokens.
            with contextlib.suppress(Exception):
                await response.aclose()


async def sse_pairs(response: httpx.Response) -> AsyncIterator[tuple[str, bytes]]:
    """(event, data) pairs of a server-sent event stream; `event` is "" when unnamed."""
    event, data = "", []
    async for line in response.aiter_lines():
        if not line:
            if data:
                yield event, b"\n".join(data)
            event, data = "", []
        elif line.startswith("data:"):
            data.append(line[5:].lstrip().encode())
        elif line.startswith("event:"):
            event = line[6:].strip()
    if data:
        yield event, b"\n".join(data)
