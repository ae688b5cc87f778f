"""The upstream simulator over real loopback HTTP: OpenAI wire via the official SDK, plus
the simulator's own endpoints and latency profiles. Anthropic, Gemini and faults have
their own modules."""

import json
import math
import time

import httpx
import openai
import pytest

from tests.simulator.helpers import (
    TIME_TOOL_OPENAI,
    WEATHER_TOOL_OPENAI,
    oai,
    pieces,
    prompt_tokens,
    quote_prefix,
    tok,
)

SYSTEM = "You are a terse assistant."
QUESTION = "What is the capital of France?"
MESSAGES = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]


def test_health_and_models(sim):
    assert httpx.get(f"{sim}/_sim/health").status_code == 200
    ids = [m.id for m in oai(sim).models.list()]
    assert ids[:2] == ["gpt-4o", "gpt-4o-mini"]
    assert {"claude-haiku-4-5", "gemini-2.5-flash", "text-embedding-3-small"} <= set(ids)
    assert oai(sim).models.retrieve("claude-sonnet-4-5").owned_by == "anthropic"
    assert httpx.get(f"{sim}/nope").status_code == 404


def test_chat_non_streaming(sim):
    r = oai(sim).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    choice = r.choices[0]
    assert r.id.startswith("chatcmpl-")
    assert r.object == "chat.completion"
    assert r.model == "gpt-4o-mini"
    assert r.system_fingerprint
    assert abs(r.created - time.time()) < 60
    assert choice.index == 0
    assert choice.message.role == "assistant"
    assert choice.message.tool_calls is None
    assert choice.finish_reason == "stop"
    assert choice.logprobs is None
    text = choice.message.content
    assert text.startswith(quote_prefix("gpt-4o-mini", QUESTION) + " ")
    assert 20 <= tok(text) <= 80
    assert r.usage.prompt_tokens == prompt_tokens(SYSTEM, QUESTION) == 19
    assert r.usage.completion_tokens == tok(text)
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens

    # Deterministic per (model, conversation); another model answers differently.
    again = oai(sim).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert again.choices[0].message.content == text
    assert again.id != r.id
    other = oai(sim).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert other.choices[0].message.content.startswith(quote_prefix("gpt-4o", QUESTION))


def test_any_catalog_model_on_openai_route(sim):
    r = oai(sim).chat.completions.create(model="claude-haiku-4-5", messages=[{"role": "user", "content": "Hi"}])
    assert r.choices[0].message.content.startswith('[claude-haiku-4-5] You asked: "Hi".')


def test_chat_streaming_matches_non_streaming(sim):
    client = oai(sim)
    full = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    text = full.choices[0].message.content
    chunks = list(
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True})
    )
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    first = chunks[0].choices[0]
    assert first.delta.role == "assistant" and first.delta.content == ""
    content = [c.choices[0].delta.content for c in chunks[1:-2]]
    assert "".join(content) == text
    assert content == pieces(text)  # one token per delta
    assert sum(tok(p) for p in content) == full.usage.completion_tokens
    finish = chunks[-2]
    assert finish.choices[0].finish_reason == "stop" and finish.choices[0].delta.content is None
    assert all(c.usage is None for c in chunks[:-1])
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == []
    assert usage_chunk.usage.prompt_tokens == full.usage.prompt_tokens == prompt_tokens(SYSTEM, QUESTION)
    assert usage_chunk.usage.completion_tokens == full.usage.completion_tokens
    assert usage_chunk.usage.total_tokens == full.usage.total_tokens


def test_raw_sse_framing_ends_with_done(sim):
    body = {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True}
    with httpx.stream("POST", f"{sim}/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        raw = r.read().decode()
    events = raw.split("\n\n")
    assert events[-1] == ""
    assert events[-2] == "data: [DONE]"
    assert all(e.startswith("data: ") for e in events[:-1])
    # No usage chunk without stream_options.include_usage.
    assert all("usage" not in json.loads(e[6:]) for e in events[:-2])


def test_max_tokens_truncates_with_length(sim):
    client = oai(sim)
    full = client.chat.completions.create(model="gpt-4.1", messages=MESSAGES).choices[0].message.content
    r = client.chat.completions.create(model="gpt-4.1", messages=MESSAGES, max_tokens=9)
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 9
    assert r.choices[0].message.content == "".join(pieces(full)[:9]) == "[gpt-4.1] You asked"
    r = client.chat.completions.create(model="gpt-4.1", messages=MESSAGES, max_completion_tokens=3)
    assert r.choices[0].message.content == "[gpt-" and r.usage.completion_tokens == 3

    chunks = list(
        client.chat.completions.create(
            model="gpt-4.1", messages=MESSAGES, max_tokens=9, stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "[gpt-4.1] You asked"
    assert chunks[-2].choices[0].finish_reason == "length"
    assert chunks[-1].usage.completion_tokens == 9


def test_stop_sequence(sim):
    r = oai(sim).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stop=["asked", "never-there"])
    assert r.choices[0].message.content == "[gpt-4o-mini] You "
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.completion_tokens == 8


def test_logprobs(sim):
    client = oai(sim)
    r = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, logprobs=True, top_logprobs=3)
    text = r.choices[0].message.content
    entries = r.choices[0].logprobs.content
    assert [e.token for e in entries] == pieces(text)
    assert len(entries) == r.usage.completion_tokens
    for e in entries:
        assert -2.6 < e.logprob < 0
        assert e.bytes == list(e.token.encode())
        assert len(e.top_logprobs) == 3
        assert e.top_logprobs[0].token == e.token and e.top_logprobs[0].logprob == e.logprob
        assert e.top_logprobs[1].logprob < e.logprob and e.top_logprobs[2].logprob < e.top_logprobs[1].logprob
    again = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, logprobs=True, top_logprobs=3)
    assert [e.logprob for e in again.choices[0].logprobs.content] == [e.logprob for e in entries]

    streamed = []
    for chunk in client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, logprobs=True, top_logprobs=3, stream=True
    ):
        if chunk.choices and chunk.choices[0].logprobs:
            streamed.extend(chunk.choices[0].logprobs.content)
    assert [(e.token, e.logprob) for e in streamed] == [(e.token, e.logprob) for e in entries]


def test_json_modes(sim):
    client = oai(sim)
    r = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, response_format={"type": "json_object"})
    value = json.loads(r.choices[0].message.content)
    assert list(value) == ["answer"]
    assert value["answer"].startswith(quote_prefix("gpt-4o", QUESTION))
    assert r.usage.completion_tokens == tok(r.choices[0].message.content)

    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "population": {"type": "integer"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["city", "population", "tags"],
        "additionalProperties": False,
    }
    r = client.chat.completions.create(
        model="gpt-4o",
        messages=MESSAGES,
        response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": schema, "strict": True}},
    )
    value = json.loads(r.choices[0].message.content)
    assert set(value) == {"city", "population", "tags"}
    assert value["population"] == 1
    assert value["city"] == value["tags"][0] and value["city"].startswith("[gpt-4o] You asked")


def test_n_choices(sim):
    r = oai(sim).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, n=3)
    assert [c.index for c in r.choices] == [0, 1, 2]
    texts = [c.message.content for c in r.choices]
    assert all(t.startswith(quote_prefix("gpt-4o-mini", QUESTION)) for t in texts)
    assert r.usage.completion_tokens == sum(tok(t) for t in texts)
    single = oai(sim).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert texts[0] == single.choices[0].message.content

    chunks = list(oai(sim).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, n=3, stream=True))
    by_index = {0: "", 1: "", 2: ""}
    for c in chunks:
        for ch in c.choices:
            by_index[ch.index] += ch.delta.content or ""
    assert [by_index[i] for i in range(3)] == texts


def test_tool_call_non_streaming(sim):
    client = oai(sim)
    tools = [WEATHER_TOOL_OPENAI, TIME_TOOL_OPENAI]
    question = "Paris weather tomorrow?"
    r = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": question}], tools=tools)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather"
    args = json.loads(call.function.arguments)
    assert args == {"city": "Paris", "unit": "celsius", "days": 1}
    assert r.usage.completion_tokens == tok("get_weather") + tok(call.function.arguments)
    assert r.usage.prompt_tokens == prompt_tokens(question, tools=tools)

    # Forced tools: a named one, or "required" (= the first), even without "weather".
    r = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Tokyo please"}],
        tools=tools,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    assert r.choices[0].message.tool_calls[0].function.name == "get_time"
    assert json.loads(r.choices[0].message.tool_calls[0].function.arguments) == {"tz": "Tokyo"}
    r = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Tokyo please"}], tools=tools, tool_choice="required"
    )
    assert r.choices[0].message.tool_calls[0].function.name == "get_weather"
    # No trigger, or tool_choice none: text.
    for kwargs in ({}, {"tool_choice": "none"}):
        q = "Tokyo please" if not kwargs else question
        r = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": q}], tools=tools, **kwargs)
        assert r.choices[0].finish_reason == "stop"
        assert r.choices[0].message.content.startswith(quote_prefix("gpt-4o", q))


def test_tool_call_streaming(sim):
    client = oai(sim)
    messages = [{"role": "user", "content": "Oslo weather?"}]
    full = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=[WEATHER_TOOL_OPENAI])
    expected = full.choices[0].message.tool_calls[0]
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=messages,
            tools=[WEATHER_TOOL_OPENAI],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    first = chunks[0].choices[0].delta
    assert first.role == "assistant"
    assert first.tool_calls[0].index == 0
    assert first.tool_calls[0].id == expected.id
    assert first.tool_calls[0].function.name == "get_weather"
    assert first.tool_calls[0].function.arguments == ""
    fragments = [c.choices[0].delta.tool_calls[0].function.arguments for c in chunks[1:-2]]
    assert all(c.choices[0].delta.tool_calls[0].index == 0 for c in chunks[1:-2])
    assert "".join(fragments) == expected.function.arguments
    assert json.loads("".join(fragments)) == {"city": "Oslo", "unit": "celsius", "days": 1}
    assert chunks[-2].choices[0].finish_reason == "tool_calls"
    assert chunks[-1].usage.completion_tokens == tok("get_weather") + sum(tok(f) for f in fragments)
    assert chunks[-1].usage.completion_tokens == full.usage.completion_tokens


def test_tool_result_is_quoted(sim):
    tools = [WEATHER_TOOL_OPENAI]
    arguments = '{"city":"Paris","unit":"celsius","days":1}'
    messages = [
        {"role": "user", "content": "Paris weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": arguments}}],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "22 degrees and sunny"},
    ]
    r = oai(sim).chat.completions.create(model="gpt-4o", messages=messages, tools=tools)
    assert r.choices[0].finish_reason == "stop"
    assert r.choices[0].message.content.startswith('[gpt-4o] The tool returned: "22 degrees and sunny". ')
    assert r.usage.prompt_tokens == (
        prompt_tokens("Paris weather?", "", "22 degrees and sunny", tools=tools) + tok("get_weather") + tok(arguments)
    )


def test_content_parts_and_long_quotes(sim):
    long = "word " * 100
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Look at"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}},
                {"type": "text", "text": long},
            ],
        }
    ]
    r = oai(sim).chat.completions.create(model="gpt-4o", messages=messages)
    text = r.choices[0].message.content
    assert text.startswith('[gpt-4o] You asked: "Look at\nword word')
    assert '…".' in text  # clipped quote
    assert r.usage.prompt_tokens == 3 + 2 + 100


def test_embeddings(sim):
    client = oai(sim)
    r = client.embeddings.create(model="text-embedding-3-small", input="What is the capital of France?")
    vec = r.data[0].embedding
    assert len(vec) == 1536
    assert math.isclose(sum(v * v for v in vec), 1.0, rel_tol=1e-5)
    assert r.usage.prompt_tokens == r.usage.total_tokens == 7
    assert r.model == "text-embedding-3-small"

    texts = ["What is the capital of France?", "what is the capital of france", "How do I bake bread?"]
    r = client.embeddings.create(model="text-embedding-3-small", input=texts, dimensions=256)
    assert [d.index for d in r.data] == [0, 1, 2]
    a, b, c = (d.embedding for d in r.data)
    assert len(a) == 256
    cos = lambda x, y: sum(p * q for p, q in zip(x, y, strict=True))  # noqa: E731
    assert cos(a, b) > 0.8 > 0.3 > cos(a, c)
    assert r.usage.prompt_tokens == sum(tok(t) for t in texts)

    # Float encoding over the wire gives the same (deterministic) vector as the SDK's base64.
    raw = httpx.post(
        f"{sim}/v1/embeddings", json={"model": "text-embedding-3-small", "input": texts[0], "encoding_format": "float"}
    ).json()
    assert raw["object"] == "list" and raw["data"][0]["object"] == "embedding"
    assert raw["data"][0]["embedding"] == pytest.approx(vec, abs=1e-6)


def test_unknown_model_and_bad_requests(sim):
    with pytest.raises(openai.NotFoundError) as err:
        oai(sim).chat.completions.create(model="gpt-9", messages=MESSAGES)
    assert err.value.status_code == 404
    assert err.value.code == "model_not_found"
    assert err.value.body["type"] == "invalid_request_error"
    with pytest.raises(openai.BadRequestError) as err:
        oai(sim).chat.completions.create(model="gpt-4o", messages=[])
    assert err.value.param == "messages"
    r = httpx.post(f"{sim}/v1/chat/completions", content=b"{not json")
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"


def test_ttft_header_delays_first_byte(sim):
    client = oai(sim)
    started = time.monotonic()
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_headers={"x-sim-ttft-ms": "200"}
    )
    assert time.monotonic() - started >= 0.2  # the SDK returns once headers arrived
    assert "".join(c.choices[0].delta.content or "" for c in stream).startswith(quote_prefix("gpt-4o-mini", QUESTION))

    started = time.monotonic()
    r = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, extra_headers={"x-sim-tokens-per-s": "200"})
    assert time.monotonic() - started >= r.usage.completion_tokens / 200


def test_catalog_latency_profile(slow_simulator):
    # gpt-4.1-nano: ttft 180 ms, 200 tokens/s.
    client = oai(slow_simulator)
    started = time.monotonic()
    stream = client.chat.completions.create(model="gpt-4.1-nano", messages=MESSAGES, stream=True)
    first_byte = time.monotonic() - started
    n = sum(1 for c in stream if c.choices and c.choices[0].delta.content)
    total = time.monotonic() - started
    assert first_byte >= 0.18
    assert total >= 0.18 + (n - 1) / 200
    started = time.monotonic()
    r = client.chat.completions.create(model="gpt-4.1-nano", messages=MESSAGES)
    assert time.monotonic() - started >= 0.18 + r.usage.completion_tokens / 200
    # The override headers still win.
    started = time.monotonic()
    client.chat.completions.create(
        model="gpt-4.1-nano", messages=MESSAGES, extra_headers={"x-sim-ttft-ms": "0", "x-sim-tokens-per-s": "0"}
    )
    assert time.monotonic() - started < 0.15
