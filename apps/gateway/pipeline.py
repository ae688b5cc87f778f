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
from dataclasses import dataclass, replace
from decimal import Decimal

from django.conf import settings

from apps.billing import selectors as ledger
from apps.billing import services as billing
from apps.billing import standing
from apps.cache import services as cache
from apps.cache.embedder import batcher
from apps.core import metrics, orm, pg
from apps.core.errors import ApiError
from apps.core.llm import ChatRequest, ChatResult, Usage
from apps.providers import dispatch
from apps.providers.catalog import ModelInfo, amodels
from apps.providers.errors import UpstreamError
from apps.routing import services as routing
from apps.routing import speculation
from apps.tenants import ratelimit
from apps.tenants.keyauth import aresolve_key, extract_key

from . import anthropic_wire, openai_wire, sse
from .call import Call
from .wires import ANTHROPIC, OPENAI, Wire, for_request

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
        require_method(request, "POST")
        await admit(call, request.headers)
        req = parse(call, wire, request.body)
        chain = await resolve(call, req)
        await count(call)
        hit = await look_up(call, req, request.headers)
        if hit is not None:
            return respond_from_cache(call, wire, req, hit)
        chain = await route(call, req, chain)
        if await speculate(call, req):
            result = await dispatch_speculated(call, req)
            if req.stream:
                return respond_stream(call, wire, req, sse.replay(result))
            return respond(call, wire, result)
        if req.stream:
            return respond_stream(call, wire, req, await dispatch_stream(call, req, chain))
        return respond(call, wire, await dispatch_complete(call, req, chain))
    except Exception as failure:
        return await refuse(call, wire, failure)


def require_method(request, method: str) -> None:
    if request.method != method:
        raise ApiError(405, f"Use {method} for {request.path}.")


# Admit


async def admit(call: Call, headers) -> None:
    """Who is calling: 401/403 otherwise, from the per-process key snapshot; 402 when
    billing has suspended the tenant for an unpaid invoice (a per-process snapshot too);
    503 while the database cannot be reached, so no call is answered that the ledger
    cannot take (the snapshots would let a known key through)."""
    await pg.outage.check()
    call.principal = await aresolve_key(extract_key(headers))
    await standing.admit(tenant_id=call.principal.tenant_id)


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
        raise unknown_model(name)
    return model


def unknown_model(name: str) -> ApiError:
    return ApiError(404, f"The model '{name}' does not exist or you do not have access to it.",
                    code="model_not_found", param="model")


async def resolve(call: Call, req: ChatRequest) -> list[ModelInfo]:
    """The model asked for, then its fallbacks able to serve the request. A routed name
    (`auto`, a tenant's alias, a model of its pool when it allows substitution) stands
    for the tenant's pool, strongest model first until the route stage picks one."""
    call.routing = await routing.snapshot(call.principal.tenant_id)
    catalog = await amodels()
    call.needs = req.needs()
    members = routing.pool_for(call.routing, req.model, catalog, needs=call.needs)
    if members == [] and req.model != "auto":
        raise ApiError(400, f"None of the models '{req.model}' stands for can serve this request (it needs "
                       f"{', '.join(sorted(call.needs))}).", code="unsupported_parameter", param="model")
    # Two or more: routed per prompt; one: that model, as if named.
    call.pool = routing.routed(members)
    call.model = call.pool[-1] if call.pool else members[0] if members else await resolve_model(req.model)
    if not call.needs <= call.model.capabilities:   # a named model would drop what it lacks and answer anyway
        raise ApiError(400, f"The model '{call.model.id}' cannot serve this request (it lacks "
                       f"{', '.join(sorted(call.needs - call.model.capabilities))}).", code="unsupported_parameter",
                       param="model")
    return dispatch.chain_for(call.model, catalog, needs=call.needs)


# Admit, second half: the rate limit, counted once the call is known to be well formed


async def count(call: Call) -> None:
    """Counts the well-formed call against its rate limits, then (a call, not a model list)
    its tenant's monthly call cap (a 400 uses neither). The check runs alongside the cache
    lookup and the upstream call (`alongside_admission` waits for it before answering),
    except when the tenant is close to a limit: then it is awaited first, so a call about
    to be refused never reaches (and costs) an upstream."""
    call.admission = asyncio.ensure_future(_admission(call))
    if ratelimit.near_limit(call.principal) or standing.near_cap(call.principal.tenant_id):
        await call.admission


async def _admission(call: Call) -> None:
    await ratelimit.enforce(call.principal)
    if call.ledger:
        await standing.quota_count(tenant_id=call.principal.tenant_id)


async def alongside_admission(call: Call, work, *, settle: bool = False):
    """`work`'s result once the rate limit has admitted the call; refused (over the limit,
    or the check itself failed), the work is cancelled (closing any upstream connection)
    and the refusal raised. With `settle` (a whole answer asked of an upstream) the work
    finishes first instead: a provider that has the request goes on generating, and
    charging, after we hang up, so the refused call records what it cost rather than a guess."""
    task = asyncio.ensure_future(work)
    try:
        await call.admission
    except BaseException as refused:
        if not (settle and isinstance(refused, Exception)):  # a client gone (cancelled) is not a refusal
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise
    return await task


# Cache lookup


async def look_up(call: Call, req: ChatRequest, headers) -> cache.Hit | None:
    """A stored answer to serve instead of calling a model: exact, then semantic."""
    config = await cache.snapshot(call.principal.tenant_id)
    # A routed name has its own namespace: a name asked of a pool (served by any of its
    # models) may equal a model's family ("gpt-4.1"), whose entries that model alone wrote.
    plan = cache.plan_for(req, call.principal, config, headers,
                          route="routed:" + req.model if call.pool or req.model == "auto" else call.model.family)
    if plan is None:
        return None
    found = await alongside_admission(call, cache.lookup(plan))
    call.cache_plan = plan
    if isinstance(found, cache.Miss):
        call.cache, call.cache_miss = "miss", found
        return None
    call.cache, call.cache_similarity, call.cache_entry_id = found.kind, found.similarity, found.entry_id
    call.served, call.replayed = (await amodels()).get(found.result.model), found.result.usage
    call.replayed_model = found.result.model
    cache.hit_counter().add(plan, found.entry_id)
    return found


# Route


async def route(call: Call, req: ChatRequest, chain: list[ModelInfo]) -> list[ModelInfo]:
    """Which models may answer, in order: for a routed call, the cheapest model of the pool
    predicted to keep the tenant's quality floor, then its fallbacks (skipping open
    circuits); otherwise the chain as resolved. Reuses the cache's embedding of the last
    user turn, and embeds it only when the cache did not."""
    if not call.pool:
        return chain
    prompt = req.last_user_text()
    call.vector = call.cache_miss.vector if call.cache_miss is not None else None
    if call.vector is None and prompt:
        call.vector = await batcher().embed(prompt)
    catalog = await amodels()
    call.judge = speculation.judge_of(call.routing, req, catalog)
    call.decision = await routing.decide(tenant_id=call.principal.tenant_id, config=call.routing, pool=call.pool,
                                         prompt=prompt, vector=call.vector, speculating=call.judge is not None)
    call.model = call.decision.model
    return routing.chain_for(call.decision, catalog, needs=call.needs)


# Speculate


async def speculate(call: Call, req: ChatRequest) -> bool:
    """Whether a cheap draft answers first (cascade, race, selective race: the tenant's
    choice), judged before it is served; see apps.routing.speculation."""
    if call.decision is None:
        return False
    call.speculation = speculation.plan_for(config=call.routing, decision=call.decision, judge=call.judge,
                                            needs=call.needs, catalog=await amodels())
    return call.speculation is not None


# Dispatch


async def dispatch_complete(call: Call, req: ChatRequest, chain: list[ModelInfo]) -> ChatResult:
    async def complete() -> ChatResult:
        result = await dispatch.complete(req, chain, call.outcome, circuits=_circuits(call))
        # Known the moment the upstream answers: recorded even if the rate limit then refuses.
        call.served, call.usage = next(m for m in chain if m.id == result.model), result.usage
        return result

    call.answer = await alongside_admission(call, complete(), settle=True)
    return call.answer


async def dispatch_speculated(call: Call, req: ChatRequest) -> ChatResult:
    """The speculation's chosen answer; the draft, strong and judge costs go to the ledger,
    also when the strong model fails (the run is the call's before it starts)."""
    async def speculate_now() -> ChatResult:
        done = call.speculated = speculation.Run()
        await speculation.run(call.speculation, req, done)
        call.served, call.usage = done.served, done.result.usage
        return done.result

    try:
        call.answer = await alongside_admission(call, speculate_now(), settle=True)
    finally:
        for tried in call.speculated.outcomes if call.speculated else ():
            call.outcome.attempts += tried.attempts
            call.outcome.failed.extend(tried.failed)
    return call.answer


async def dispatch_stream(call: Call, req: ChatRequest, chain: list[ModelInfo]) -> AsyncIterator:
    """The upstream's stream events, once a model of the chain has started answering."""
    call.served, first, events = await alongside_admission(
        call, dispatch.open_stream(req, chain, call.outcome, circuits=_circuits(call)))
    return sse.prepend(first, events)


def _circuits(call: Call) -> routing.Probes | None:
    """A routed call tries a model only if no other call holds its half-open probe, and
    takes the probe as it tries it (apps.routing.breaker); a model asked for by name is
    tried whatever its circuit."""
    return routing.Probes() if call.decision is not None else None


# Respond


def _route_header(call: Call) -> dict[str, str]:
    return {"x-aka-route": call.decision.route} if call.decision is not None else {}


def _cost_so_far(call: Call, usage: Usage | None) -> Decimal | int | None:
    """What the call cost us in micro-dollars; None for a fresh stream whose usage is unknown."""
    if call.hit:
        return 0
    if call.speculated is not None:
        return billing.speculated_cost(_routing_facts(call))
    if usage is None:
        return None
    return call.served.cost_micros(usage) if call.served is not None else 0


def _aka_headers(call: Call, model_id: str, cost_micros=None) -> dict[str, str]:
    """The cost is left out where it is not yet known (a fresh stream's headers)."""
    headers = {"x-aka-model": model_id, "x-aka-cache": call.cache, **_route_header(call)}
    if call.speculated is not None:
        headers["x-aka-speculation"] = f"{call.speculation.run}:{call.speculated.outcome}"
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
    return ok(call, wire.render(result, _response_id(call, wire), int(time.time())),
              _aka_headers(call, result.model, _cost_so_far(call, result.usage)))


def respond_stream(call: Call, wire: Wire, req: ChatRequest, events: AsyncIterator) -> Answer:
    """Server-sent events; the stream itself fills in the call's status, usage and answer.
    The model named is the one serving the call, or a cached answer's (which may have
    left the catalog)."""
    model_id = call.served.id if call.served else call.replayed_model
    headers = {**sse.HEADERS, **_aka_headers(call, model_id, _cost_so_far(call, None))}
    writer = wire.writer(_response_id(call, wire), int(time.time()), model_id, req, call.replayed or call.usage)
    body = sse.body(call, req, writer, wire.stream_error, events, promise_delivered)
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
        except Exception as exc:  # a check that failed (the database, Redis) is answered below as any failure is
            refusal = exc
    error = refusal or failure
    if isinstance(error, UpstreamError):
        error = error.as_api_error()
    elif pg.unreachable(error):
        pg.outage.report()
        error = pg.unavailable()
    elif not isinstance(error, ApiError):
        log.error("call %s failed", call.request_id, exc_info=error)
        metrics.UNHANDLED.labels(call.endpoint).inc()
        error = ApiError(500, "The gateway failed to process the request.", code="internal_error")
    call.status, call.error_type = error.status, error.code or "invalid_request"
    return Answer(call, error.status, {"content-type": JSON, **_route_header(call), **error.headers},
                  wire.error_body(error, call.request_id))


# Record


def abandoned(call: Call) -> None:
    """The client hung up before a whole answer went out, which is then not sent: an answer
    is recorded as a stream's would be (499, not billed; it is still cached), an error as
    the error it was (an upstream failure is the fact worth keeping; it is not billed either)."""
    if call.status == 200:
        call.status, call.error_type = 499, "client_closed"


async def promise(call: Call) -> None:
    """Before a whole answer's bytes go out: its ledger row in the journal, so that a
    process killed before the row is committed does not take it along."""
    if call.principal is not None and call.ledger:
        call.stop_clock()
        call.promised = billing.call_promise(facts=await _facts(call))


async def promise_delivered(call: Call) -> None:
    """As `promise`, for a stream about to send its last event: the row as it will be
    once that event is out (billable). Should the process die in between, the call is
    billed though its client missed the end; if the client leaves, `end` writes the row
    as it really ended."""
    if call.principal is not None and call.ledger:
        call.stop_clock()   # as `end` would: the row promised is then the row recorded, built once
        call.promised = billing.call_promise(facts=replace(await _facts(call), status=200, error_type=""))


async def end(call: Call) -> None:
    """The record stage, the one end of every call: metrics, its ledger row (billing decides
    what it costs and bills), then the work that follows: storing a fresh answer in the cache."""
    call.stop_clock()
    metrics.REQUESTS.labels(call.endpoint, str(call.status)).inc()
    metrics.LATENCY.labels(call.endpoint).observe(call.latency_ms / 1000)
    if call.upstream is not None:
        fallback = call.model is not None and call.upstream.id != call.model.id
        metrics.SERVED.labels(call.upstream.id, "yes" if fallback else "no").inc()
    if call.principal is None or not call.ledger:
        return  # never authenticated (metrics only), or not a call (the model list)
    facts = await _facts(call)
    promised = call.promised or billing.call_promise(facts=facts)
    routing.observe(failed=call.outcome.failed, served=call.answering.id if call.answering else None,
                    answered=call.speculated.answered if call.speculated else [])
    await _learn(call)
    await billing.call_record(facts=facts, promised=promised)
    # A whole answer its client left before it went out is stored too: an SDK that timed out
    # and retries then gets it from the cache.
    if call.cache == "miss" and call.answer is not None and call.answered:
        await cache.remember(call.cache_plan, call.cache_miss, call.answer)


async def _facts(call: Call) -> billing.CallFacts:
    return billing.CallFacts(
        tenant_id=call.principal.tenant_id, api_key_id=call.principal.api_key_id, request_id=call.request_id,
        endpoint=call.endpoint, status=call.status, price_per_call_cents=call.principal.price_per_call_cents,
        model_requested=call.model_requested, served=call.served, usage=call.usage or Usage(), cache=call.cache,
        replayed=call.replayed, replayed_model=call.replayed_model, cache_similarity=call.cache_similarity,
        cache_entry_id=call.cache_entry_id,
        baseline=await _baseline(call), stream=call.stream, error_type=call.error_type,
        attempts=call.outcome.attempts, latency_ms=call.elapsed_ms() if call.latency_ms is None else call.latency_ms,
        ttft_ms=call.ttft_ms, prompt=call.prompt, routing=_routing_facts(call), created_at=call.arrived)


def _routing_facts(call: Call) -> billing.RoutingFacts | None:
    decision, done = call.decision, call.speculated
    if decision is None:
        return None
    if done is None:
        return billing.RoutingFacts(route=decision.route, reason=decision.reason,
                                    predicted_quality=decision.predicted_quality)
    verdict = done.verdict
    return billing.RoutingFacts(
        route=decision.route, reason=decision.reason, predicted_quality=decision.predicted_quality,
        speculation=call.speculation.mode, outcome=done.outcome, judge=verdict.judge if verdict else "",
        judge_score=verdict.score if verdict else None, draft_cost_micros=done.draft_cost,
        strong_cost_micros=done.strong_cost, judge_cost_micros=done.judge_cost)


async def _learn(call: Call) -> None:
    """What the router keeps of a routed call: each answer with the prompt's embedding,
    the draft labelled by what its judge's verdict shows; the client's feedback labels the
    served one later (the cheap model's label when a draft was served).
    Written before the ledger row, so feedback (which needs the row) finds them."""
    if call.decision is None or call.vector is None:
        return
    samples = []
    done = call.speculated
    if done is not None and done.verdict is not None:
        shown = routing.judge_label(call.decision, done.verdict)
        samples.append(routing.Sample(request_id=call.request_id, model=call.speculation.draft.id,
                                      task=call.decision.task, good=shown, source="judge" if shown is not None else ""))
    if call.upstream is not None and all(s.model != call.upstream.id for s in samples):
        samples.append(routing.Sample(request_id=call.request_id, model=call.upstream.id, task=call.decision.task))
    if samples:
        try:
            await routing.remember(tenant_id=call.principal.tenant_id, vector=call.vector, samples=samples)
        except Exception:  # the ledger row matters more than what the router learns
            log.exception("router could not remember call %s", call.request_id)


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
        require_method(request, "POST")
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


async def serve_models(request, model: str | None = None) -> Answer:
    """The names a tenant may call in its client's list shape: `auto`, its aliases, the
    catalog's models; or the one named `model` (GET /v1/models/{model}, which SDKs call to
    check a name before using it)."""
    wire = for_request(request)
    call = Call(endpoint="models", ledger=False)
    try:
        require_method(request, "GET")
        await admit(call, request.headers)
        await count(call)
        aliases = (await routing.snapshot(call.principal.tenant_id)).aliases
        ids = ["auto", *sorted(aliases), *sorted((await amodels()).keys())]
        await call.admission
        if model is None:
            return ok(call, wire.model_list(ids), {})
        if model not in ids:
            raise unknown_model(model)
        return ok(call, wire.model_object(model), {})
    except Exception as failure:
        return await refuse(call, wire, failure)


async def serve_count_tokens(request) -> Answer:
    """POST /v1/messages/count_tokens: the input tokens of a Messages request, counted by
    its model's provider (Claude and Gemini models; others, and names the router decides
    per prompt as a chat call would, get a 400 before they count against the rate limit). Rate-limited like a call, not
    billed."""
    call = Call(endpoint="count_tokens", ledger=False)
    try:
        require_method(request, "POST")
        await admit(call, request.headers)
        req = anthropic_wire.parse_messages(request.body, counting=True)
        members = routing.pool_for(await routing.snapshot(call.principal.tenant_id), req.model, await amodels(),
                                   req.needs())
        if routing.routed(members):
            raise ApiError(400, f"'{req.model}' is routed per prompt among several models: name one of them to count "
                           "its tokens.", code="unsupported_model", param="model")
        model = await resolve_model(req.model)
        counter = dispatch.counter_for(model)
        await count(call)
        tokens = await alongside_admission(call, counter.count_tokens(req, model))
        return ok(call, anthropic_wire.token_count(tokens), {})
    except Exception as failure:
        return await refuse(call, ANTHROPIC, failure)


async def serve_feedback(request) -> Answer:
    """A tenant's verdict on one of its calls: a label for the router and, when it says a
    semantic cache hit was wrong, the end of that entry's semantic serving."""
    call = Call(endpoint="feedback", ledger=False)
    try:
        require_method(request, "POST")
        await admit(call, request.headers)
        request_id, score, comment = openai_wire.parse_feedback(request.body)
        tenant_id = call.principal.tenant_id
        judged = await orm.run(ledger.call_of, tenant_id=tenant_id, request_id=request_id)
        if judged is None:
            raise ApiError(404, f"No call '{request_id}' was recorded for this account.", code="call_not_found",
                           param="request_id")
        await orm.run(routing.feedback_record, tenant_id=tenant_id, request_id=request_id, score=score,
                      comment=comment, model_served=judged.model_served, route=judged.route,
                      speculation=judged.speculation, predicted=judged.predicted_quality)
        demoted = False
        if score < routing.NEGATIVE and judged.cache == "semantic" and judged.cache_entry_id is not None:
            demoted = await cache.entry_demote(tenant_id=tenant_id, entry_id=judged.cache_entry_id)
        return ok(call, openai_wire.feedback(request_id, score, demoted), {})
    except Exception as failure:
        return await refuse(call, OPENAI, failure)
