"""One call through the gateway, top to bottom:

    admit -> parse -> cache lookup -> route -> speculate -> dispatch -> respond -> record

`serve_chat` runs a chat call's stages in that order, and each stage is a function below
it, in the same order; embeddings and the model list reuse the stages they need. Stages
fill in the `Call` (state only). A failing stage raises; `refuse` turns any failure into
an error answer in the client's wire format. The handler sends the answer and then runs
`end`, the record stage: the one place every call ends, whether it was answered,
streamed, served from the cache, refused, or abandoned by the client.
"""

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.conf import settings

from apps.billing import selectors as ledger
from apps.billing import services as billing
from apps.cache import services as cache
from apps.core import metrics
from apps.core.errors import ApiError
from apps.core.llm import ChatRequest, ChatResult, Usage
from apps.providers import dispatch
from apps.providers.catalog import ModelInfo, amodels
from apps.providers.errors import UpstreamError
from apps.routing import services as routing
from apps.tenants import ratelimit
from apps.tenants.keyauth import aresolve_key, extract_key

from . import openai_wire, sse
from .call import Call
from .wires import OPENAI, Wire, for_request

log = logging.getLogger(__name__)
JSON = "application/json"


@dataclass
class Answer:
    """What the handler sends (with the call's `x-request-id`): a whole body, or a stream of events."""

    call: Call
    status: int
    headers: dict[str, str]
    body: bytes = b""
    events: AsyncIterator[bytes] | None = None


# --- A chat call -----------------------------------------------------------------------


async def serve_chat(request, wire: Wire) -> Answer:
    call = Call(endpoint=wire.endpoint)
    try:
        require_post(request)
        await admit(call, request.headers)
        req = parse(call, wire, request.body)
        chain = await resolve(call, req)
        await count(call)
        hit = await look_up(call, req, request.headers)
        if hit is not None:
            return respond_from_cache(call, wire, req, hit)
        chain = route(call, req, chain)
        chain = speculate(call, req, chain)
        if req.stream:
            return respond_stream(call, wire, req, await dispatch_stream(call, req, chain))
        return respond(call, wire, await dispatch_complete(call, req, chain))
    except Exception as failure:
        return await refuse(call, wire, failure)


def require_post(request) -> None:
    if request.method != "POST":
        raise ApiError(405, f"Use POST for {request.path}.")


# Admit


async def admit(call: Call, headers) -> None:
    """Who is calling: 401/403 otherwise, from the per-process key snapshot."""
    call.principal = await aresolve_key(extract_key(headers))


# Parse (and resolve the model asked for)


def parse(call: Call, wire: Wire, body: bytes) -> ChatRequest:
    """The body in the canonical shape; a 400 in the client's shape when it is malformed."""
    req = wire.parse(body)
    call.model_requested, call.stream = req.model, req.stream
    if call.principal.log_prompts:
        call.prompt = req.last_user_text()
    return req


async def resolve_model(name: str, capability: str = "chat") -> ModelInfo:
    model = (await amodels()).get(settings.AKA_AUTO_MODEL if name == "auto" else name)
    if model is None or not model.supports(capability):
        raise ApiError(404, f"The model '{name}' does not exist or you do not have access to it.",
                       code="model_not_found", param="model")
    return model


async def resolve(call: Call, req: ChatRequest) -> list[ModelInfo]:
    """The model asked for (`auto`: the default), then its fallbacks able to serve the request."""
    call.model = await resolve_model(req.model)
    if req.tools and not call.model.supports("tools"):
        raise ApiError(400, f"The model '{call.model.id}' does not support tools.", code="unsupported_parameter",
                       param="tools")
    return dispatch.chain_for(call.model, await amodels(), needs={"tools"} if req.tools else set())


# Admit, second half: the rate limit, counted once the call is known to be well formed


async def count(call: Call) -> None:
    """Counts the well-formed call against its rate limits (a 400 uses no quota). The check
    runs alongside the cache lookup and the upstream call (`alongside_admission` waits for
    it before answering), except when the tenant is close to its limit: then it is awaited
    first, so a call about to be refused never reaches (and costs) an upstream."""
    call.admission = asyncio.ensure_future(ratelimit.enforce(call.principal))
    if ratelimit.near_limit(call.principal):
        await call.admission


async def alongside_admission(call: Call, work):
    """`work`'s result once the rate limit has admitted the call; over the limit, the work
    is cancelled (closing any upstream connection) and the 429 raised."""
    task = asyncio.ensure_future(work)
    try:
        await call.admission
    except BaseException:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise
    return await task


# Cache lookup


async def look_up(call: Call, req: ChatRequest, headers) -> cache.Hit | None:
    """A stored answer to serve instead of calling a model: exact, then semantic."""
    config = await cache.snapshot(call.principal.tenant_id)
    plan = cache.plan_for(req, call.principal, config, headers,
                          route="auto" if req.model == "auto" else call.model.family)
    if plan is None:
        return None
    found = await alongside_admission(call, cache.lookup(plan))
    call.cache_plan = plan
    if isinstance(found, cache.Miss):
        call.cache, call.cache_miss = "miss", found
        return None
    call.cache, call.cache_similarity, call.cache_entry_id = found.kind, found.similarity, found.entry_id
    call.served, call.replayed = (await amodels()).get(found.result.model), found.result.usage
    cache.hit_counter().add(plan, found.entry_id)
    return found


# Route


def route(call: Call, req: ChatRequest, chain: list[ModelInfo]) -> list[ModelInfo]:
    """Which models may answer, in order. Until the router (apps.routing) picks the
    cheapest good-enough model per prompt: the model asked for, then its fallbacks."""
    return chain


# Speculate


def speculate(call: Call, req: ChatRequest, chain: list[ModelInfo]) -> list[ModelInfo]:
    """How the chain is tried. Until speculation (cascade, race) lands: one model at a time."""
    return chain


# Dispatch


async def dispatch_complete(call: Call, req: ChatRequest, chain: list[ModelInfo]) -> ChatResult:
    async def complete() -> ChatResult:
        result = await dispatch.complete(req, chain, call.outcome)
        # Known the moment the upstream answers: recorded even if the rate limit then refuses.
        call.served, call.usage = next(m for m in chain if m.id == result.model), result.usage
        return result

    call.answer = await alongside_admission(call, complete())
    return call.answer


async def dispatch_stream(call: Call, req: ChatRequest, chain: list[ModelInfo]) -> AsyncIterator:
    """The upstream's stream events, once a model of the chain has started answering."""
    call.served, first, events = await alongside_admission(call, dispatch.open_stream(req, chain, call.outcome))
    return sse.prepend(first, events)


# Respond


def _aka_headers(call: Call, model_id: str, cost_micros=None) -> dict[str, str]:
    """The cost is left out where it is not yet known (a fresh stream's headers)."""
    headers = {"x-aka-model": model_id, "x-aka-cache": call.cache}
    if cost_micros is not None:
        headers["x-aka-cost-usd"] = f"{cost_micros / 1_000_000:.8f}"
    if call.cache_similarity is not None:
        headers["x-aka-cache-similarity"] = f"{call.cache_similarity:.4f}"
    return headers


def _response_id(call: Call, wire: Wire) -> str:
    return wire.id_prefix + call.request_id.removeprefix("req_")


def ok(call: Call, body: bytes, headers: dict[str, str]) -> Answer:
    """A whole JSON answer: the call succeeded."""
    call.status, call.error_type = 200, ""
    return Answer(call, 200, {"content-type": JSON, **headers}, body)


def respond(call: Call, wire: Wire, result: ChatResult) -> Answer:
    cost = 0 if call.hit or call.served is None else call.served.cost_micros(result.usage)
    return ok(call, wire.render(result, _response_id(call, wire), int(time.time())),
              _aka_headers(call, result.model, cost))


def respond_stream(call: Call, wire: Wire, req: ChatRequest, events: AsyncIterator) -> Answer:
    """Server-sent events; the stream itself fills in the call's status, usage and answer."""
    model_id = call.served.id if call.served else req.model
    headers = {**sse.HEADERS, **_aka_headers(call, model_id, 0 if call.hit else None)}
    body = sse.body(call, wire.writer(_response_id(call, wire), int(time.time()), model_id, req.include_usage),
                    wire.stream_error, events)
    return Answer(call, 200, headers, events=body)


def respond_from_cache(call: Call, wire: Wire, req: ChatRequest, hit: cache.Hit) -> Answer:
    """A stored answer, in the same wire format (and streamed, if asked) as a fresh one."""
    if req.stream:
        return respond_stream(call, wire, req, sse.replay(hit.result))
    return respond(call, wire, hit.result)


async def refuse(call: Call, wire: Wire, failure: Exception) -> Answer:
    """Any failure as an error answer in the client's wire format, with a request id."""
    refusal = None
    if call.admission is not None:
        try:  # on an early failure a 429 wins, and no check is left unobserved
            await call.admission
        except ApiError as exc:
            refusal = exc
    error = refusal or failure
    if isinstance(error, UpstreamError):
        error = error.as_api_error()
    elif not isinstance(error, ApiError):
        log.error("call %s failed", call.request_id, exc_info=error)
        metrics.UNHANDLED.labels(call.endpoint).inc()
        error = ApiError(500, "The gateway failed to process the request.", code="internal_error")
    call.status, call.error_type = error.status, error.code or "invalid_request"
    return Answer(call, error.status, {"content-type": JSON, **error.headers},
                  wire.error_body(error))


# Record


async def end(call: Call) -> None:
    """The record stage, the one end of every call: metrics, its ledger row (billing decides
    what it costs and bills), then the work that follows: storing a fresh answer in the cache."""
    call.stop_clock()
    metrics.REQUESTS.labels(call.endpoint, str(call.status)).inc()
    metrics.LATENCY.labels(call.endpoint).observe(call.latency_ms / 1000)
    if call.served is not None and call.status == 200 and not call.hit:
        fallback = call.model is not None and call.served.id != call.model.id
        metrics.SERVED.labels(call.served.id, "yes" if fallback else "no").inc()
    if call.principal is None or not call.ledger:
        return  # never authenticated (metrics only), or not a call (the model list)
    await billing.call_record(facts=billing.CallFacts(
        tenant_id=call.principal.tenant_id, api_key_id=call.principal.api_key_id, request_id=call.request_id,
        endpoint=call.endpoint, status=call.status, price_per_call_cents=call.principal.price_per_call_cents,
        model_requested=call.model_requested, served=call.served, usage=call.usage or Usage(), cache=call.cache,
        replayed=call.replayed, cache_similarity=call.cache_similarity, cache_entry_id=call.cache_entry_id,
        baseline=await _baseline(call), stream=call.stream, error_type=call.error_type,
        attempts=call.outcome.attempts, latency_ms=call.latency_ms, ttft_ms=call.ttft_ms, prompt=call.prompt))
    if call.cache == "miss" and call.answer is not None and call.status == 200:
        await cache.remember(call.cache_plan, call.cache_miss, call.answer)


async def _baseline(call: Call) -> ModelInfo | None:
    try:
        return (await amodels()).get(await billing.baseline_model(tenant_id=call.principal.tenant_id))
    except Exception:  # the ledger row matters more than its counterfactual
        log.exception("no baseline model for call %s", call.request_id)
        return None


# --- Embeddings, the model list and feedback ------------------------------------------


async def serve_embeddings(request) -> Answer:
    """Embeddings from an embedding-capable OpenAI-compatible upstream, with the same
    retries and fallbacks as chat."""
    call = Call(endpoint="embeddings")
    try:
        require_post(request)
        await admit(call, request.headers)
        call.model_requested, data = openai_wire.parse_embeddings(request.body)
        call.model = await resolve_model(call.model_requested, capability="embeddings")
        chain = dispatch.chain_for(call.model, await amodels(), needs={"embeddings"})
        await count(call)

        async def embed():
            call.served, body, call.usage = await dispatch.embed(data, chain, call.outcome)
            return body

        body = await alongside_admission(call, embed())
        return ok(call, openai_wire.embeddings(body),
                  _aka_headers(call, call.served.id, call.served.cost_micros(call.usage)))
    except Exception as failure:
        return await refuse(call, OPENAI, failure)


async def serve_models(request) -> Answer:
    """The models a tenant may call, plus `auto`, in its client's list shape."""
    wire = for_request(request)
    call = Call(endpoint="models", ledger=False)
    try:
        await admit(call, request.headers)
        await count(call)
        ids = ["auto", *sorted((await amodels()).keys())]
        await call.admission
        return ok(call, wire.model_list(ids), {})
    except Exception as failure:
        return await refuse(call, wire, failure)


async def serve_feedback(request) -> Answer:
    """A tenant's verdict on one of its calls: a label for the router and, when it says a
    semantic cache hit was wrong, the end of that entry's semantic serving."""
    call = Call(endpoint="feedback", ledger=False)
    try:
        require_post(request)
        await admit(call, request.headers)
        request_id, score, comment = openai_wire.parse_feedback(request.body)
        tenant_id = call.principal.tenant_id
        judged = await sync_to_async(ledger.call_of)(tenant_id=tenant_id, request_id=request_id)
        if judged is None:
            raise ApiError(404, f"No call '{request_id}' was recorded for this account.", code="call_not_found",
                           param="request_id")
        await sync_to_async(routing.feedback_record)(tenant_id=tenant_id, request_id=request_id, score=score,
                                                     comment=comment)
        demoted = False
        if score < routing.NEGATIVE and judged.cache == "semantic" and judged.cache_entry_id is not None:
            demoted = await cache.entry_demote(tenant_id=tenant_id, entry_id=judged.cache_entry_id)
        return ok(call, openai_wire.feedback(request_id, score, demoted), {})
    except Exception as failure:
        return await refuse(call, OPENAI, failure)
