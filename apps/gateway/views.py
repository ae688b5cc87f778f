"""Gateway endpoints. Thin: authenticate, parse, hand to the pipeline, render."""

import logging
import time

import orjson
from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt

from apps.cache import services as cache
from apps.core import metrics
from apps.core.errors import ApiError
from apps.providers import dispatch
from apps.providers.adapters import adapter_for
from apps.providers.canonical import ChatResult
from apps.providers.catalog import amodels
from apps.providers.errors import UpstreamError

from . import sse
from .parsing import field, json_object
from .pipeline import Call, as_api_error, prepare, resolve_model
from .wires import ANTHROPIC, OPENAI, Wire

log = logging.getLogger(__name__)
JSON = "application/json"


class GatewayResponse(HttpResponse):
    """A JSON response with work to do once its bytes are sent (the ledger row), so the
    client does not wait on it; the gateway handler runs `after` before it returns."""

    def __init__(self, body: bytes, call: Call, *, status: int = 200, headers: dict | None = None,
                 ledger: bool = True, **record):
        super().__init__(body, status=status, content_type=JSON, headers=headers)
        self["x-request-id"] = call.request_id
        call.stop_clock()
        self.after = (lambda: call.finish(status=status, **record)) if ledger else None


def error_response(err: ApiError, wire: Wire, call: Call, error_type: str = "") -> GatewayResponse:
    return GatewayResponse(orjson.dumps(wire.error_body(err)), call, status=err.status, headers=err.headers,
                           error_type=error_type or err.code or "invalid_request")


def aka_headers(call: Call, model_id: str, cost_micros=None) -> dict[str, str]:
    headers = {"x-request-id": call.request_id, "x-aka-model": model_id, "x-aka-cache": call.cache}
    if call.cache_similarity is not None:
        headers["x-aka-cache-similarity"] = f"{call.cache_similarity:.4f}"
    if cost_micros is not None:
        headers["x-aka-cost-usd"] = f"{cost_micros / 1_000_000:.8f}"
    return headers


async def guarded(call: Call, wire: Wire, work) -> HttpResponse:
    """Runs a call's work; any failure becomes a ledger row and an error in the wire format."""
    try:
        return await work()
    except (UpstreamError, ApiError) as failure:
        error = await call.admission_refusal() or failure
        if isinstance(error, UpstreamError):
            return error_response(as_api_error(error), wire, call, error.kind)
        return error_response(error, wire, call)
    except Exception:
        # A bug of ours: the client still gets its own error shape and a request id.
        log.exception("call %s failed", call.request_id)
        metrics.UNHANDLED.labels(call.endpoint).inc()
        return error_response(ApiError(500, "The gateway failed to process the request.", code="internal_error"),
                              wire, call)


async def _chat(request, call: Call, wire: Wire) -> HttpResponse:
    await call.admit(request.headers)
    req = wire.parse(request.body)
    chain = await prepare(call, req)
    await call.count()
    response_id = wire.id_prefix + call.request_id.removeprefix("req_")
    created = int(time.time())
    plan = cache.plan_for(req, call.principal, await cache.snapshot(call.principal.tenant_id), request.headers,
                          route="auto" if req.model == "auto" else call.model.family)
    miss = None
    if plan is not None:
        found = await call.alongside_admission(cache.lookup(plan))
        if isinstance(found, cache.Hit):
            return await _serve_hit(call, wire, req, plan, found, response_id, created)
        call.cache, miss = "miss", found

    def remember(result: ChatResult) -> None:
        if miss is not None:
            call.later(lambda: cache.remember(plan, miss, result))

    if req.stream:
        model, first, events = await call.alongside_admission(dispatch.open_stream(req, chain, call.outcome))
        body = sse.body(call, wire, model, model.id, first, events, response_id, created, req.include_usage, remember)
        return sse.EventStream(body, aka_headers(call, model.id))
    async def complete() -> ChatResult:
        result = await dispatch.complete(req, chain, call.outcome)
        call.charge(result.usage, next(m for m in chain if m.id == result.model))
        return result

    result = await call.alongside_admission(complete())
    served = call.served
    remember(result)
    return GatewayResponse(wire.render(result, response_id, created), call,
                           headers=aka_headers(call, served.id, served.cost_micros(result.usage)),
                           usage=result.usage, served=served)


async def _serve_hit(call: Call, wire: Wire, req, plan, hit, response_id: str, created: int) -> HttpResponse:
    """A cached answer, in the same wire format (and streamed, if asked) as a fresh one."""
    call.cache, call.cache_similarity, call.cache_entry_id = hit.kind, hit.similarity, hit.entry_id
    cache.hit_counter().add(plan, hit.entry_id)
    served = (await amodels()).get(hit.result.model)
    headers = aka_headers(call, hit.result.model, 0)
    if req.stream:
        events = sse.replay(hit.result)
        body = sse.body(call, wire, served, hit.result.model, await anext(events), events, response_id, created,
                        req.include_usage)
        return sse.EventStream(body, headers)
    return GatewayResponse(wire.render(hit.result, response_id, created), call, headers=headers, served=served)


def _post_only(wire: Wire, path: str) -> GatewayResponse:
    call = Call(endpoint=wire.endpoint)
    return error_response(ApiError(405, f"Use POST for {path}."), wire, call)


@csrf_exempt
async def chat_completions(request):
    if request.method != "POST":
        return _post_only(OPENAI, request.path)
    call = Call(endpoint=OPENAI.endpoint)
    return await guarded(call, OPENAI, lambda: _chat(request, call, OPENAI))


@csrf_exempt
async def messages(request):
    if request.method != "POST":
        return _post_only(ANTHROPIC, request.path)
    call = Call(endpoint=ANTHROPIC.endpoint)
    return await guarded(call, ANTHROPIC, lambda: _chat(request, call, ANTHROPIC))


async def _models(request, call: Call, anthropic_client: bool) -> HttpResponse:
    await call.admit(request.headers)
    await call.count()
    ids = ["auto", *sorted((await amodels()).keys())]
    if anthropic_client:
        data = [{"type": "model", "id": i, "display_name": i, "created_at": "2025-01-01T00:00:00Z"} for i in ids]
        body = {"data": data, "has_more": False, "first_id": ids[0], "last_id": ids[-1]}
    else:
        body = {"object": "list", "data": [{"id": i, "object": "model", "created": 1735689600, "owned_by": "akarouter"}
                                           for i in ids]}
    refusal = await call.admission_refusal()
    if refusal:
        raise refusal
    return GatewayResponse(orjson.dumps(body), call, ledger=False)  # listing models is not a call


async def models(request):
    """The models this tenant may call, plus `auto`, in OpenAI's or Anthropic's list shape."""
    anthropic_client = "anthropic-version" in request.headers
    call = Call(endpoint="models")
    return await guarded(call, ANTHROPIC if anthropic_client else OPENAI, lambda: _models(request, call, anthropic_client))


async def _embed(request, call: Call) -> HttpResponse:
    await call.admit(request.headers)
    data = json_object(request.body)
    call.model_requested = field(data, "model", str, required=True)
    if field(data, "input", (str, list), required=True) in ("", []):
        raise ApiError(400, "'input' must not be empty.", code="invalid_value", param="input")
    model = await resolve_model(call.model_requested, capability="embeddings")
    await call.count()

    async def embed():
        body, usage = await adapter_for(model.provider).embed(data, model)
        call.charge(usage, model)
        return body, usage

    body, usage = await call.alongside_admission(embed())
    return GatewayResponse(orjson.dumps(body), call, headers=aka_headers(call, model.id, model.cost_micros(usage)),
                           usage=usage, served=model)


@csrf_exempt
async def embeddings(request):
    """Passed through to an embedding-capable OpenAI-compatible upstream."""
    if request.method != "POST":
        return _post_only(OPENAI, request.path)
    call = Call(endpoint="embeddings")
    return await guarded(call, OPENAI, lambda: _embed(request, call))
