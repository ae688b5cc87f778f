"""Fuzzing both chat APIs through the live gateway with Hypothesis.

Each example starts from a valid body (streamed or not) and applies a few mutations: wrong
types at any field, deep nesting, huge and NUL-laden strings, empty and odd content
arrays, unknown fields, odd roles and blocks. Whatever comes in, the gateway answers with
no 5xx, a request id, the client's error shape for a 4xx, and a ledger row for the call:
billable exactly when it was a 200.
"""

import copy
import json
import time
from dataclasses import dataclass

import httpx
import pytest
from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st

from apps.billing.models import CallRecord
from apps.tenants import services
from tests import factories

FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
BODY_LIMIT = 256 * 1024  # the test gateway's AKA_MAX_BODY_BYTES; larger bodies never reach the parsers
MAX_TOKENS = st.integers(1, 12)
MODELS = ["gpt-4o-mini", "claude-haiku-4-5", "gemini-2.5-flash", "llama-3.1-8b-instruct", "auto"]

# Text with NULs and odd code points (never lone surrogates: not encodable as JSON text).
TEXT = st.one_of(st.text(max_size=30), st.sampled_from(["", "weather in Rome?", "\x00", "a\x00b", "\u202e\ufeff"]))
# A few of these in one body stay under the body limit (a NUL is 6 bytes once escaped).
HUGE = st.builds(lambda ch, n: ch * n, st.sampled_from(["x", "\x00", "é ", "🙂"]), st.sampled_from([2_000, 9_000]))


@dataclass(frozen=True)
class Deep:
    """A value nested `depth` levels deep, written straight into the JSON text (json.dumps
    would hit Python's recursion limit)."""

    kind: str
    depth: int

    def json(self) -> str:
        if self.kind == "list":
            return "[" * self.depth + "0" + "]" * self.depth
        return '{"a":' * self.depth + "0" + "}" * self.depth


DEEP = st.builds(Deep, st.sampled_from(["list", "dict"]), st.sampled_from([40, 63, 64, 65, 100, 253, 300, 1100]))
WORDS = st.sampled_from(["user", "assistant", "system", "developer", "tool", "function", "wizard", "text", "image",
                         "image_url", "input_audio", "file", "refusal", "tool_use", "tool_result", "auto", "any",
                         "none", "required", "tool", "base64", "url", "json_object", "json_schema", "gpt-4o-mini"])
SMALL = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | TEXT | WORDS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6) | WORDS, inner, max_size=3),
    max_leaves=6)
ODD_BLOCK = st.fixed_dictionaries({"type": WORDS | SMALL}, optional={
    key: SMALL for key in ("text", "image_url", "source", "input", "id", "name", "tool_use_id", "content", "function",
                           "arguments", "url", "media_type", "data", "refusal")})
ODD_MESSAGE = st.fixed_dictionaries({"role": WORDS | SMALL}, optional={
    "content": TEXT | SMALL | st.lists(ODD_BLOCK, max_size=3), "tool_calls": SMALL | st.lists(ODD_BLOCK, max_size=2),
    "tool_call_id": SMALL, "name": SMALL})
WEIRD = st.one_of(SMALL, TEXT, HUGE, DEEP, WORDS, ODD_BLOCK, ODD_MESSAGE, st.lists(ODD_BLOCK | ODD_MESSAGE, max_size=3))

WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
# Once found by this suite: the upstream simulator built tool arguments from a schema's
# `required` names and failed on a non-string one, so every model answered 500.
BAD_SCHEMA = {**WEATHER_SCHEMA, "required": [None]}
MALFORMED_SCHEMA = {
    "openai": {"model": "gpt-4o-mini", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}],
               "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": BAD_SCHEMA}}],
               "tool_choice": "required"},
    "anthropic": {"model": "gpt-4o-mini", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}],
                  "tools": [{"name": "get_weather", "input_schema": BAD_SCHEMA}], "tool_choice": {"type": "any"}},
}


def _openai_content():
    text = st.builds(lambda t: {"type": "text", "text": t}, TEXT)
    image = st.sampled_from([{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                             {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}])
    return TEXT | st.lists(text | image, min_size=1, max_size=3)


@st.composite
def openai_bodies(draw) -> dict:
    messages = []
    if draw(st.booleans()):
        messages.append({"role": draw(st.sampled_from(["system", "developer"])), "content": draw(TEXT)})
    if draw(st.booleans()):
        messages += [
            {"role": "user", "content": draw(TEXT)},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {
                "name": "get_weather", "arguments": draw(st.sampled_from(['{"city": "Rome"}', "", "[1", "5"]))}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": draw(TEXT)},
        ]
    messages.append({"role": "user", "content": draw(_openai_content())})
    body = {"model": draw(st.sampled_from(MODELS)), "messages": messages, "max_tokens": draw(MAX_TOKENS),
            "stream": draw(st.booleans())}
    if draw(st.booleans()):
        body["tools"] = [{"type": "function", "function": {"name": "get_weather", "description": "weather",
                                                           "parameters": WEATHER_SCHEMA}}]
        body["tool_choice"] = draw(st.sampled_from(
            ["auto", "none", "required", {"type": "function", "function": {"name": "get_weather"}}]))
    body.update(draw(st.fixed_dictionaries({}, optional={
        "temperature": st.floats(0, 2), "top_p": st.floats(0, 1), "stop": TEXT | st.lists(TEXT, max_size=4),
        "user": TEXT, "seed": st.integers(0, 2**31), "metadata": st.dictionaries(st.text(max_size=8), TEXT, max_size=2),
        "stream_options": st.just({"include_usage": True}), "logprobs": st.booleans(),
        "response_format": st.sampled_from([{"type": "text"}, {"type": "json_object"}]),
        "presence_penalty": st.floats(-2, 2)})))
    return body


@st.composite
def anthropic_bodies(draw) -> dict:
    text_block = st.builds(lambda t: {"type": "text", "text": t}, TEXT)
    image_block = st.sampled_from([
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}}])
    messages = []
    if draw(st.booleans()):
        messages += [
            {"role": "user", "content": draw(TEXT)},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Rome"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                          "content": draw(TEXT | st.lists(text_block, max_size=2))}]},
        ]
    messages.append({"role": "user", "content": draw(TEXT | st.lists(text_block | image_block, min_size=1, max_size=3))})
    body = {"model": draw(st.sampled_from(MODELS)), "max_tokens": draw(MAX_TOKENS), "messages": messages,
            "stream": draw(st.booleans())}
    if draw(st.booleans()):
        body["tools"] = [{"name": "get_weather", "description": "weather", "input_schema": WEATHER_SCHEMA}]
        body["tool_choice"] = draw(st.sampled_from(
            [{"type": "auto"}, {"type": "any"}, {"type": "none"}, {"type": "tool", "name": "get_weather"}]))
    body.update(draw(st.fixed_dictionaries({}, optional={
        "system": TEXT | st.lists(text_block, max_size=2), "temperature": st.floats(0, 1), "top_p": st.floats(0, 1),
        "top_k": st.integers(1, 50), "stop_sequences": st.lists(TEXT, max_size=4),
        "metadata": st.fixed_dictionaries({}, optional={"user_id": TEXT})})))
    return body


# Tool schemas are forwarded untouched, so they are mutated only as a whole.
OPAQUE = {"parameters", "input_schema"}


def _paths(value, prefix=()):
    yield prefix
    if prefix and prefix[-1] in OPAQUE:
        return
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        yield from _paths(child, (*prefix, key))


def _at(body, path):
    for key in path:
        body = body[key]
    return body


@st.composite
def mutated(draw, bodies) -> object:
    """A valid body with up to three mutations anywhere in it (the root included)."""
    body = copy.deepcopy(draw(bodies))
    for _ in range(draw(st.sampled_from([0, 1, 1, 2, 3]))):
        # A depth first, then a node at that depth: top-level fields are picked as often
        # as message fields or block fields, whatever their numbers.
        paths = list(_paths(body))
        depth = draw(st.sampled_from(sorted({len(p) for p in paths})))
        path = draw(st.sampled_from([p for p in paths if len(p) == depth]))
        target = _at(body, path)
        ops = ["replace", "delete"] if path else ["replace"]
        if isinstance(target, dict):
            ops.append("add field")
        if isinstance(target, list):
            ops += ["append", "empty"]
        op = draw(st.sampled_from(ops))
        if op == "replace" and not path:
            body = draw(WEIRD)
        elif op == "replace":
            _at(body, path[:-1])[path[-1]] = draw(WEIRD)
        elif op == "delete":
            del _at(body, path[:-1])[path[-1]]
        elif op == "add field":
            target[draw(st.text(max_size=12) | WORDS)] = draw(WEIRD)
        elif op == "append":
            target.insert(draw(st.integers(0, len(target))), draw(WEIRD))
        else:
            target.clear()
    return body


def encode(body) -> bytes:
    deep = {}

    def placeholder(value: Deep) -> str:
        deep[key := f"\U000f0000{len(deep)}\U000f0000"] = value.json()
        return key

    text = json.dumps(body, ensure_ascii=False, default=placeholder)
    for key, value in deep.items():
        text = text.replace(f'"{key}"', value)
    return text.encode()


@dataclass
class Fuzz:
    client: httpx.Client
    key: str
    tenant: object

    def send(self, api: str, body: bytes) -> tuple[httpx.Response, bytes]:
        headers = {"content-type": "application/json", "x-aka-cache": "off"}
        if api == "openai":
            path, headers["authorization"] = "/v1/chat/completions", f"Bearer {self.key}"
        else:
            path, headers["x-api-key"], headers["anthropic-version"] = "/v1/messages", self.key, "2023-06-01"
        with self.client.stream("POST", path, content=body, headers=headers) as response:
            return response, response.read()  # a stream is read to its end

    def ledger_row(self, request_id: str) -> CallRecord:
        """The call's row, written just after its response (a stream's once it has ended)."""
        deadline = time.monotonic() + 5
        while True:
            rows = list(CallRecord.objects.for_tenant(self.tenant).filter(request_id=request_id))
            if rows or time.monotonic() > deadline:
                assert len(rows) == 1, f"{len(rows)} ledger rows for {request_id}"
                return rows[0]
            time.sleep(0.01)


@pytest.fixture
def fuzz(live):
    services.tenant_set_rate_limits(tenant=live.tenant, rpm=0, key_rpm=0)  # 0: unlimited
    _, key = factories.make_key(live.tenant, "fuzz")  # a key no gateway process has cached with the old limits
    with httpx.Client(base_url=live.url, timeout=30) as client:
        yield Fuzz(client=client, key=key, tenant=live.tenant)


def check_error_shape(api: str, payload, request_id: str) -> None:
    if api == "openai":
        assert set(payload) == {"error"}
        error = payload["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert isinstance(error["param"], str | None) and isinstance(error["code"], str | None)
    else:
        assert set(payload) == {"type", "error", "request_id"} and payload["type"] == "error"
        assert payload["request_id"] == request_id
        error = payload["error"]
        assert set(error) == {"type", "message"}
    assert isinstance(error["type"], str) and error["message"] and isinstance(error["message"], str)


def check_answer(api: str, streamed: bool, raw: bytes) -> None:
    if streamed:
        if api == "openai":
            assert raw.endswith(b"data: [DONE]\n\n"), raw[-500:]
        else:
            assert raw.endswith(b'event: message_stop\ndata: {"type":"message_stop"}\n\n'), raw[-500:]
    elif api == "openai":
        assert json.loads(raw)["object"] == "chat.completion"
    else:
        assert json.loads(raw)["type"] == "message"


def check(fuzz: Fuzz, api: str, body) -> None:
    encoded = encode(body)
    assume(len(encoded) <= BODY_LIMIT)
    response, raw = fuzz.send(api, encoded)
    status = response.status_code
    streamed = response.headers.get("content-type", "").startswith("text/event-stream")
    event(f"{status} {'stream' if streamed else 'json'}")  # shown by --hypothesis-show-statistics
    assert status < 500, (status, raw[:2000], encoded[:2000])
    request_id = response.headers.get("x-request-id")
    assert request_id, (status, raw[:2000])
    if status == 200:
        check_answer(api, streamed, raw)
    else:
        check_error_shape(api, json.loads(raw), request_id)
    row = fuzz.ledger_row(request_id)
    assert (row.status_code, row.billable) == (status, status == 200), encoded[:2000]


@FUZZ
@given(body=mutated(openai_bodies()))
@example(body=MALFORMED_SCHEMA["openai"])
def test_openai_bodies_never_break_the_gateway(fuzz, body):
    check(fuzz, "openai", body)


@FUZZ
@given(body=mutated(anthropic_bodies()))
@example(body=MALFORMED_SCHEMA["anthropic"])
def test_anthropic_bodies_never_break_the_gateway(fuzz, body):
    check(fuzz, "anthropic", body)
