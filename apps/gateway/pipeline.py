"""The request pipeline for one call: model resolution, dispatch, and the ledger row.

auth -> parse -> (cache, route, speculate: later stages) -> dispatch -> record.
"""

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings

from apps.billing.ledger import writer
from apps.core import metrics
from apps.core.errors import ApiError
from apps.providers import dispatch
from apps.providers.canonical import ChatRequest, Usage
from apps.providers.catalog import ModelInfo, amodels
from apps.providers.errors import UpstreamError
from apps.tenants import ratelimit
from apps.tenants.keyauth import Principal, aresolve_key, extract_key

log = logging.getLogger(__name__)


@dataclass
class Call:
    """Everything the gateway knows about one call while serving it."""

    endpoint: str
    request_id: str = field(default_factory=lambda: "req_" + uuid.uuid4().hex)
    started: float = field(default_factory=time.perf_counter)
    principal: Principal | None = None
    model_requested: str = ""
    model: ModelInfo | None = None
    stream: bool = False
    prompt: str | None = None
    outcome: dispatch.Outcome = field(default_factory=dispatch.Outcome)
    # Tokens and model the upstream charged us for (set by `charge`).
    usage: Usage | None = None
    served: ModelInfo | None = None
    recorded: bool = False
    latency_ms: float | None = None
    admission: asyncio.Future | None = None
    # Cache outcome for the ledger: miss | exact | semantic | off.
    cache: str = "off"
    cache_similarity: float | None = None
    cache_entry_id: int | None = None
    # Work to run once the response is out and the ledger row written (cache writes).
    deferred: list = field(default_factory=list)

    async def admit(self, headers) -> Principal:
        """Who is calling: 401/403 otherwise, from the in-process key cache."""
        self.principal = await aresolve_key(extract_key(headers))
        return self.principal

    async def count(self) -> None:
        """Counts the call against its rate limits once it is known to be well formed (a
        400 uses no quota). The check runs alongside the cache lookup and the upstream
        call (`alongside_admission` waits for it before answering), except when the
        tenant is close to its limit: then it is awaited first, so a call about to be
        refused never reaches (and costs) an upstream."""
        self.admission = asyncio.ensure_future(ratelimit.enforce(self.principal))
        if ratelimit.near_limit(self.principal):
            await self.admission

    def charge(self, usage: Usage, served: ModelInfo) -> None:
        """What the upstream charged for this call, known as soon as it answered: recorded
        even if the call is then refused by the rate limit."""
        self.usage, self.served = usage, served

    async def alongside_admission(self, work):
        """`work`'s result once the rate limit has admitted the call; over the limit, the
        work is cancelled (closing any upstream connection) and the 429 raised. Exact:
        the Redis counter is atomic, only the wait overlaps."""
        task = asyncio.ensure_future(work)
        try:
            await self.admission
        except BaseException:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            raise
        return await task

    async def admission_refusal(self) -> ApiError | None:
        """The rate limit's 429, if any, once its check has finished (it counts either
        way). On an early failure a 429 wins, and no check is left unobserved."""
        if self.admission is None:
            return None
        try:
            await self.admission
        except ApiError as refusal:
            return refusal
        return None

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def stop_clock(self) -> None:
        if self.latency_ms is None:
            self.latency_ms = self.elapsed_ms()

    def later(self, job) -> None:
        """Runs `job()` (a coroutine function) after the response, off the client's clock."""
        self.deferred.append(job)

    async def finish(self, **record) -> None:
        """The end of a call: its ledger row, then the deferred work."""
        await self.record(**record)
        for job in self.deferred:
            try:
                await job()
            except Exception:
                log.exception("deferred work failed for %s", self.request_id)

    async def record(self, *, status: int, usage: Usage | None = None, served: ModelInfo | None = None,
                     error_type: str = "", ttft_ms: float | None = None) -> None:
        """Writes this call's one ledger row. Calls never authenticated have no tenant
        and are counted in metrics only. A cache hit used no provider tokens."""
        self.stop_clock()
        latency = self.latency_ms
        metrics.REQUESTS.labels(self.endpoint, str(status)).inc()
        metrics.LATENCY.labels(self.endpoint).observe(latency / 1000)
        if self.principal is None or self.recorded:
            return
        self.recorded = True
        served = served or self.served
        hit = self.cache in ("exact", "semantic")
        usage = Usage() if hit else usage or self.usage or Usage()
        billable = status == 200
        await writer().record({
            "tenant_id": self.principal.tenant_id,
            "api_key_id": self.principal.api_key_id,
            "request_id": self.request_id,
            "endpoint": self.endpoint,
            "model_requested": self.model_requested,
            "model_served": served.id if served else "",
            "provider": served.provider if served else "",
            "stream": self.stream,
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "provider_cost_micros": served.cost_micros(usage) if served else Decimal(0),
            "price_cents": self.principal.price_per_call_cents,
            "billable": billable,
            "status_code": status,
            "error_type": error_type,
            "cache": self.cache,
            "cache_similarity": self.cache_similarity,
            "cache_entry_id": self.cache_entry_id,
            "attempts": max(self.outcome.attempts, 1),
            "latency_ms": latency,
            "ttft_ms": ttft_ms,
            "prompt": self.prompt if self.principal.log_prompts else None,
        })


async def resolve_model(name: str, capability: str = "chat") -> ModelInfo:
    catalog = await amodels()
    model = catalog.get(settings.AKA_AUTO_MODEL if name == "auto" else name)
    if model is None or not model.supports(capability):
        raise ApiError(404, f"The model '{name}' does not exist or you do not have access to it.",
                       code="model_not_found", param="model")
    return model


async def prepare(call: Call, req: ChatRequest) -> list[ModelInfo]:
    call.model_requested = req.model
    call.stream = req.stream
    call.prompt = req.last_user_text()
    call.model = await resolve_model(req.model)
    if req.tools and not call.model.supports("tools"):
        raise ApiError(400, f"The model '{call.model.id}' does not support tools.", code="unsupported_parameter",
                       param="tools")
    return dispatch.chain_for(call.model, await amodels(), req)


def as_api_error(error: UpstreamError) -> ApiError:
    prefix = {"upstream_timeout": "The upstream provider timed out",
              "upstream_rejected": "The upstream provider rejected the request"}.get(error.kind,
                                                                                   "The upstream provider failed")
    return ApiError(error.status, f"{prefix}: {error.message}", code=error.kind)
