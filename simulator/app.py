"""The simulator's raw ASGI application and router.

Routes
  POST /v1/chat/completions                        OpenAI Chat Completions (JSON / SSE)
  POST /v1/embeddings                              OpenAI Embeddings
  GET  /v1/models, /v1/models/{id}                 OpenAI models
  POST /v1/messages, /v1/messages/count_tokens     Anthropic Messages
  POST /v1beta/models/{model}:generateContent      Gemini (also under /v1/models/...)
  POST /v1beta/models/{model}:streamGenerateContent[?alt=sse]
  POST /v1beta/models/{model}:countTokens, GET /v1beta/models
  GET  /_sim/health, GET /_sim/stats, POST /_sim/reset
  GET|POST|DELETE /_sim/faults
  /_sim/verdict, /_sim/replay, /_sim/tasks, /_sim/skills   benchmarks' ground truth (truth.py)

Per-request headers: x-sim-fault (see faults.py), x-sim-ttft-ms, x-sim-tokens-per-s (these
override the catalog profile, also in --fast mode, where the profile latency is 0). The
same overrides can ride in the last user message as `[[pace:ttft=MS tps=N]]`, for tests
that reach the simulator through a gateway which does not forward x-sim-* headers.
"""

from __future__ import annotations

import os
import re
from types import ModuleType
from urllib.parse import parse_qs

import orjson

from . import answers, anthropic_wire, gemini_wire, openai_wire, truth
from .asgi import read_body, read_json_object, reset_connection, respond, send_bytes, stream, wait_disconnect
from .errors import WireError
from .faults import JUNK, JUNK_KINDS, STALL_SECONDS, FaultBook, valid_kind, with_junk
from .profiles import Profile, load_profiles
from .replay import book_from_env
from .stats import Stats

_NOT_FOUND = orjson.dumps(
    {"error": {"message": "Not found", "type": "invalid_request_error", "param": None, "code": "not_found"}}
)
_METHOD_NOT_ALLOWED = orjson.dumps(
    {"error": {"message": "Method not allowed", "type": "invalid_request_error", "param": None, "code": None}}
)
_OK = b'{"status":"ok"}'


def _sim_headers(scope) -> tuple[str | None, float | None, float | None]:
    fault = ttft = tps = None
    for name, value in scope["headers"]:
        if name.startswith(b"x-sim-"):
            try:
                if name == b"x-sim-fault":
                    fault = value.decode("latin-1").strip().lower()
                elif name == b"x-sim-ttft-ms":
                    ttft = float(value) / 1000.0
                elif name == b"x-sim-tokens-per-s":
                    tps = float(value)
            except ValueError:
                pass
    return fault, ttft, tps


PACE_RE = re.compile(r"\[\[pace:([^\]]*)\]\]")


def _pace_marker(text: str) -> tuple[float | None, float | None]:
    """(ttft seconds, tokens per second) from a `[[pace:ttft=MS tps=N]]` marker."""
    match = PACE_RE.search(text) if "[[pace:" in text else None
    if match is None:
        return None, None
    options = dict(part.split("=", 1) for part in match.group(1).split() if "=" in part)
    try:
        ttft = float(options["ttft"]) / 1000.0 if "ttft" in options else None
        tps = float(options["tps"]) if "tps" in options else None
    except ValueError:
        return None, None
    return ttft, tps


class Simulator:
    def __init__(self, *, fast: bool = False, catalog: str | None = None, replay: str | None = None) -> None:
        self.fast = fast
        self.truth = truth.GroundTruth(book_from_env(replay))
        self.profiles: dict[str, Profile] = load_profiles(catalog)
        self.stats = Stats()
        self.faults = FaultBook()
        self._openai_models = openai_wire.models_list(self.profiles)
        self._gemini_models = gemini_wire.models_list(self.profiles)

    # --- ASGI entry point ----------------------------------------------------------

    async def __call__(self, scope, receive, send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    async def _http(self, scope, receive, send) -> None:
        path = scope["path"]
        method = scope["method"]
        if path in truth.PATHS:
            return await self.truth.handle(method, path, receive, send)
        if method == "POST":
            if path == "/v1/chat/completions" or path == "/chat/completions":
                return await self._generate(openai_wire, scope, receive, send, None, None)
            if path == "/v1/messages":
                return await self._generate(anthropic_wire, scope, receive, send, None, None)
            if path == "/v1/embeddings" or path == "/embeddings":
                return await self._embeddings(scope, receive, send)
            if path.startswith("/v1beta/models/") or path.startswith("/v1/models/"):
                return await self._gemini(path, scope, receive, send)
            if path == "/v1/messages/count_tokens":
                return await self._count_tokens(anthropic_wire, None, receive, send)
            if path == "/_sim/reset":
                self.stats.reset()
                self.faults.reset()
                return await send_bytes(send, 200, _OK)
            if path == "/_sim/faults":
                return await self._arm_fault(receive, send)
        elif method == "GET":
            if path == "/_sim/health":
                return await send_bytes(send, 200, _OK)
            if path == "/_sim/stats":
                return await send_bytes(send, 200, orjson.dumps(self.stats.as_dict()))
            if path == "/_sim/faults":
                return await send_bytes(send, 200, orjson.dumps({"armed": [a.as_dict() for a in self.faults.armed]}))
            if path == "/v1/models" or path == "/models":
                return await send_bytes(send, 200, self._openai_models)
            if path == "/v1beta/models":
                return await send_bytes(send, 200, self._gemini_models)
            if path.startswith("/v1/models/"):
                profile = self.profiles.get(path[len("/v1/models/") :])
                if profile is None:
                    status, body, headers = openai_wire.model_not_found(path[len("/v1/models/") :])
                    return await send_bytes(send, status, body, headers=headers)
                return await send_bytes(send, 200, orjson.dumps(openai_wire.model_object(profile)))
        elif method == "DELETE" and path == "/_sim/faults":
            self.faults.armed.clear()
            return await send_bytes(send, 200, b'{"armed":[]}')
        known = path in (
            "/_sim/health",
            "/_sim/stats",
            "/_sim/reset",
            "/_sim/faults",
            "/v1/chat/completions",
            "/v1/messages",
            "/v1/embeddings",
            "/v1/models",
        )
        await send_bytes(send, 405 if known else 404, _METHOD_NOT_ALLOWED if known else _NOT_FOUND)

    # --- generation ------------------------------------------------------------------

    async def _gemini(self, path: str, scope, receive, send) -> None:
        rest = path.split("/models/", 1)[1]
        model, _, action = rest.rpartition(":")
        if not model:
            return await send_bytes(send, 404, _NOT_FOUND)
        if action == "generateContent":
            return await self._generate(gemini_wire, scope, receive, send, model, None)
        if action == "streamGenerateContent":
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            framing = "sse" if query.get("alt", [""])[0] == "sse" else "array"
            return await self._generate(gemini_wire, scope, receive, send, model, framing)
        if action == "countTokens":
            return await self._count_tokens(gemini_wire, model, receive, send)
        await send_bytes(send, 404, _NOT_FOUND)

    async def _load(self, wire: ModuleType, receive, send) -> dict | None:
        body = await read_body(receive)
        if body is None:
            return None
        try:
            data = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            status, payload, headers = wire.error(400, "The request body is not a valid JSON object.")
            await send_bytes(send, status, payload, headers=headers)
            return None
        return data

    async def _count_tokens(self, wire: ModuleType, model: str | None, receive, send) -> None:
        data = await self._load(wire, receive, send)
        if data is None:
            return
        model = model or data.get("model")
        if model not in self.profiles:
            status, payload, headers = wire.model_not_found(str(model))
            return await send_bytes(send, status, payload, headers=headers)
        try:
            body = wire.count_tokens_response(data, model)
        except WireError as exc:
            status, payload, headers = wire.error(exc.status, exc.message, exc.param, exc.code)
            return await send_bytes(send, status, payload, headers=headers)
        await send_bytes(send, 200, body)

    def _latency(self, profile: Profile, ttft: float | None, tps: float | None) -> tuple[float, float]:
        if self.fast:
            base_ttft, base_tps = 0.0, 0.0
        else:
            base_ttft, base_tps = profile.ttft_ms / 1000.0, profile.tokens_per_s
        return (base_ttft if ttft is None else ttft), (base_tps if tps is None else tps)

    async def _fault(self, wire: ModuleType, kind: str, model: str, receive, send) -> bool:
        """Play fault `kind`; True when the response is done (False for cut, the junk kinds
        and a stall that outlived its wait: the caller answers)."""
        self.stats.faulted[model] += 1
        if kind == "reset":
            await reset_connection(send)
            return True
        if kind == "stall":
            return await wait_disconnect(receive, STALL_SECONDS)
        if kind == "cut" or kind in JUNK_KINDS:
            return False
        status, body, headers = wire.fault_error(int(kind))
        await send_bytes(send, status, body, headers=headers)
        return True

    async def _generate(self, wire: ModuleType, scope, receive, send, path_model: str | None, gemini_framing: str | None) -> None:
        data = await self._load(wire, receive, send)
        if data is None:
            return
        model = path_model or data.get("model")
        if not isinstance(model, str) or not model:
            status, payload, headers = wire.error(400, "you must provide a model parameter", "model")
            return await send_bytes(send, status, payload, headers=headers)
        if model.startswith("models/"):
            model = model[len("models/") :]
        self.stats.requests[model] += 1
        profile = self.profiles.get(model)
        if profile is None:
            status, payload, headers = wire.model_not_found(model)
            return await send_bytes(send, status, payload, headers=headers)
        try:
            conv, extra = wire.parse(data, model)
        except WireError as exc:
            status, payload, headers = wire.error(exc.status, exc.message, exc.param, exc.code)
            return await send_bytes(send, status, payload, headers=headers)
        if gemini_framing is not None:
            conv.stream = True

        fault_header, ttft_override, tps_override = _sim_headers(scope)
        marker_ttft, marker_tps = _pace_marker(conv.last_user)
        ttft_override = marker_ttft if ttft_override is None else ttft_override
        tps_override = marker_tps if tps_override is None else tps_override
        kind = self.faults.pick(model, fault_header, conv.last_user)
        cut = False
        if kind is not None:
            if await self._fault(wire, kind, model, receive, send):
                return
            cut = kind == "cut"
        ttft, tps = self._latency(profile, ttft_override, tps_override)

        digest = conv.digest()
        known = self.truth.completion(conv)
        completions = [known or answers.generate(conv, i, digest) for i in range(conv.n)]
        prompt_tokens = conv.prompt_tokens()

        if not conv.stream:
            body = JUNK if kind in JUNK_KINDS else wire.response(conv, completions, prompt_tokens, extra)
            delay = ttft + (sum(c.tokens for c in completions) / tps if tps > 0 else 0.0)
            await respond(send, 200, body, delay=delay, cut=cut)
            if not cut:
                self.stats.completed[model] += 1
            return

        if wire is gemini_wire:
            chunks = gemini_wire.stream_events(conv, completions, prompt_tokens, extra)
            if gemini_framing == "sse":
                events, content_type = gemini_wire.frame_sse(chunks), gemini_wire.SSE_CONTENT_TYPE
            else:
                events, content_type = gemini_wire.frame_json_array(chunks), b"application/json"
        else:
            events = wire.stream_events(conv, completions, prompt_tokens, extra)
            content_type = wire.SSE_CONTENT_TYPE
        if kind in JUNK_KINDS:
            events = with_junk(events, late=kind == "late-junk")
        outcome = await stream(send, receive, events, ttft=ttft, tps=tps, cut=cut, content_type=content_type)
        if outcome == "completed":
            self.stats.completed[model] += 1
        elif outcome == "cancelled":
            self.stats.cancelled[model] += 1

    async def _embeddings(self, scope, receive, send) -> None:
        data = await self._load(openai_wire, receive, send)
        if data is None:
            return
        model = data.get("model")
        if not isinstance(model, str) or not model:
            status, payload, headers = openai_wire.error(400, "you must provide a model parameter", "model")
            return await send_bytes(send, status, payload, headers=headers)
        self.stats.requests[model] += 1
        profile = self.profiles.get(model)
        if profile is None:
            status, payload, headers = openai_wire.model_not_found(model)
            return await send_bytes(send, status, payload, headers=headers)
        try:
            body, marker_text = openai_wire.embeddings(data, profile)
        except WireError as exc:
            status, payload, headers = openai_wire.error(exc.status, exc.message, exc.param, exc.code)
            return await send_bytes(send, status, payload, headers=headers)
        fault_header, ttft_override, _ = _sim_headers(scope)
        kind = self.faults.pick(model, fault_header, marker_text)
        cut = False
        if kind is not None:
            if await self._fault(openai_wire, kind, model, receive, send):
                return
            cut = kind == "cut"
        ttft, _ = self._latency(profile, ttft_override, None)
        await respond(send, 200, body, delay=ttft, cut=cut)
        if not cut:
            self.stats.completed[model] += 1

    # --- /_sim/faults ---------------------------------------------------------------

    async def _arm_fault(self, receive, send) -> None:
        data = await read_json_object(receive, send)
        if data is None:
            return
        model = data.get("model") or "*"
        kind = str(data.get("kind", "")).lower()
        times = data.get("times")
        if (
            not valid_kind(kind)
            or not isinstance(model, str)
            or (times is not None and (not isinstance(times, int) or isinstance(times, bool) or times < 0))
        ):
            return await send_bytes(
                send, 400,
                b'{"error":"need kind (reset|stall|cut|junk|late-junk|400..599), model (id or *), times (int or null)"}',
            )
        self.faults.arm(model, kind, times)
        await send_bytes(send, 200, orjson.dumps({"armed": [a.as_dict() for a in self.faults.armed]}))


def create_app(*, fast: bool | None = None, catalog: str | None = None, replay: str | None = None) -> Simulator:
    """`replay`: a directory of recorded answers (default: AKA_SIMULATOR_REPLAY, else none)."""
    if fast is None:
        fast = os.environ.get("AKA_SIMULATOR_FAST", "") not in ("", "0", "false")
    return Simulator(fast=fast, catalog=catalog, replay=replay)
