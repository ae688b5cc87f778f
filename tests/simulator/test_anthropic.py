"""Anthropic Messages wire of the simulator, through the official anthropic SDK."""

import json

import anthropic
import httpx
import pytest

from tests.simulator.helpers import (
    TIME_TOOL_ANTHROPIC,
    WEATHER_TOOL_ANTHROPIC,
    claude,
    pieces,
    prompt_tokens,
    quote_prefix,
    tok,
)

SYSTEM = "Answer in one line."
QUESTION = "Why is the sky blue?"
MESSAGES = [{"role": "user", "content": QUESTION}]


def test_messages_non_streaming(sim):
    m = claude(sim).messages.create(model="claude-haiku-4-5", max_tokens=256, system=SYSTEM, messages=MESSAGES)
    assert m.id.startswith("msg_")
    assert m.type == "message" and m.role == "assistant" and m.model == "claude-haiku-4-5"
    assert m.stop_reason == "end_turn" and m.stop_sequence is None
    (block,) = m.content
    assert block.type == "text"
    assert block.text.startswith(quote_prefix("claude-haiku-4-5", QUESTION) + " ")
    assert m.usage.input_tokens == prompt_tokens(SYSTEM, QUESTION) == 17
    assert m.usage.output_tokens == tok(block.text)
    # System as text blocks and content as blocks count the same.
    m2 = claude(sim).messages.create(
        model="claude-haiku-4-5",
        max_tokens=256,
        system=[{"type": "text", "text": SYSTEM}],
        messages=[{"role": "user", "content": [{"type": "text", "text": QUESTION}]}],
    )
    assert m2.content[0].text == block.text and m2.usage.input_tokens == m.usage.input_tokens


def test_messages_streaming_events(sim):
    client = claude(sim)
    full = client.messages.create(model="claude-haiku-4-5", max_tokens=256, messages=MESSAGES)
    text = full.content[0].text
    events = list(client.messages.create(model="claude-haiku-4-5", max_tokens=256, messages=MESSAGES, stream=True))
    types = [e.type for e in events]
    n = full.usage.output_tokens
    assert types == ["message_start", "content_block_start"] + ["content_block_delta"] * n + [
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = events[0].message
    assert start.id.startswith("msg_") and start.content == [] and start.stop_reason is None
    assert start.usage.input_tokens == prompt_tokens(QUESTION) and start.usage.output_tokens == 1
    assert events[1].content_block.type == "text" and events[1].content_block.text == ""
    deltas = [e.delta.text for e in events[2:-3]]
    assert all(e.delta.type == "text_delta" and e.index == 0 for e in events[2:-3])
    assert deltas == pieces(text)
    assert events[-2].delta.stop_reason == "end_turn" and events[-2].delta.stop_sequence is None
    assert events[-2].usage.output_tokens == n == sum(tok(d) for d in deltas)

    with client.messages.stream(model="claude-haiku-4-5", max_tokens=256, messages=MESSAGES) as stream:
        assert "".join(stream.text_stream) == text
        final = stream.get_final_message()
    assert final.usage.output_tokens == n and final.usage.input_tokens == full.usage.input_tokens


def test_raw_sse_has_event_lines_and_ping(sim):
    body = {"model": "claude-haiku-4-5", "max_tokens": 3, "messages": MESSAGES, "stream": True}
    with httpx.stream(
        "POST", f"{sim}/v1/messages", json=body, headers={"x-api-key": "k", "anthropic-version": "2023-06-01"}
    ) as r:
        raw = r.read().decode()
    blocks = [b for b in raw.split("\n\n") if b]
    names = [b.split("\n")[0] for b in blocks]
    assert names == ["event: message_start", "event: content_block_start", "event: ping"] + ["event: content_block_delta"] * 3 + [
        "event: content_block_stop",
        "event: message_delta",
        "event: message_stop",
    ]
    for b in blocks:
        name, data = b.split("\n")
        assert json.loads(data.removeprefix("data: "))["type"] == name.removeprefix("event: ")


def test_max_tokens_and_stop_sequences(sim):
    client = claude(sim)
    m = client.messages.create(model="claude-haiku-4-5", max_tokens=4, messages=MESSAGES)
    assert m.stop_reason == "max_tokens" and m.usage.output_tokens == 4
    assert m.content[0].text == "[claude-haiku"
    m = client.messages.create(model="claude-haiku-4-5", max_tokens=100, messages=MESSAGES, stop_sequences=["nope", "You asked"])
    assert m.stop_reason == "stop_sequence" and m.stop_sequence == "You asked"
    assert m.content[0].text == "[claude-haiku-4-5] "
    assert m.usage.output_tokens == tok("[claude-haiku-4-5]")
    events = list(client.messages.create(model="claude-haiku-4-5", max_tokens=4, messages=MESSAGES, stream=True))
    assert events[-2].delta.stop_reason == "max_tokens" and events[-2].usage.output_tokens == 4


def test_missing_max_tokens_is_invalid_request(sim):
    r = httpx.post(f"{sim}/v1/messages", json={"model": "claude-haiku-4-5", "messages": MESSAGES})
    assert r.status_code == 400
    assert r.json()["type"] == "error"
    assert r.json()["error"] == {"type": "invalid_request_error", "message": "max_tokens: Field required"}


def test_unknown_model(sim):
    with pytest.raises(anthropic.NotFoundError) as err:
        claude(sim).messages.create(model="claude-9", max_tokens=10, messages=MESSAGES)
    assert err.value.body["error"] == {"type": "not_found_error", "message": "model: claude-9"}


def test_openai_model_on_anthropic_route(sim):
    m = claude(sim).messages.create(model="gpt-4o", max_tokens=100, messages=MESSAGES)
    assert m.content[0].text.startswith(quote_prefix("gpt-4o", QUESTION))


def test_tool_use(sim):
    client = claude(sim)
    tools = [WEATHER_TOOL_ANTHROPIC, TIME_TOOL_ANTHROPIC]
    question = "Lima weather now?"
    m = client.messages.create(
        model="claude-haiku-4-5", max_tokens=200, tools=tools, messages=[{"role": "user", "content": question}]
    )
    assert m.stop_reason == "tool_use"
    (block,) = m.content
    assert block.type == "tool_use" and block.id.startswith("toolu_") and block.name == "get_weather"
    assert block.input == {"city": "Lima", "unit": "celsius", "days": 1}
    arguments = json.dumps(block.input)
    assert m.usage.output_tokens == tok("get_weather") + tok(arguments)
    assert m.usage.input_tokens == prompt_tokens(question, tools=tools)

    m = client.messages.create(
        model="claude-haiku-4-5",
        max_tokens=200,
        tools=tools,
        tool_choice={"type": "tool", "name": "get_time"},
        messages=[{"role": "user", "content": "Seoul"}],
    )
    assert m.content[0].name == "get_time" and m.content[0].input == {"tz": "Seoul"}
    m = client.messages.create(
        model="claude-haiku-4-5",
        max_tokens=200,
        tools=tools,
        tool_choice={"type": "any"},
        messages=[{"role": "user", "content": "Seoul"}],
    )
    assert m.content[0].name == "get_weather"

    # Streaming: tool_use block start then input_json_delta fragments.
    events = list(
        client.messages.create(
            model="claude-haiku-4-5", max_tokens=200, tools=tools, stream=True, messages=[{"role": "user", "content": question}]
        )
    )
    assert events[1].content_block.type == "tool_use"
    assert events[1].content_block.name == "get_weather" and events[1].content_block.id == block.id
    fragments = [e.delta.partial_json for e in events if e.type == "content_block_delta"]
    assert all(e.delta.type == "input_json_delta" for e in events if e.type == "content_block_delta")
    assert json.loads("".join(fragments)) == block.input
    assert events[-2].delta.stop_reason == "tool_use"
    assert events[-2].usage.output_tokens == m.usage.output_tokens == tok("get_weather") + sum(map(tok, fragments))
    with client.messages.stream(
        model="claude-haiku-4-5", max_tokens=200, tools=tools, messages=[{"role": "user", "content": question}]
    ) as stream:
        final = stream.get_final_message()
    assert final.content[0].input == block.input


def test_tool_result_is_quoted(sim):
    messages = [
        {"role": "user", "content": "Lima weather now?"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Lima"}}],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "Foggy, 17 C"}]}],
        },
    ]
    m = claude(sim).messages.create(model="claude-haiku-4-5", max_tokens=300, tools=[WEATHER_TOOL_ANTHROPIC], messages=messages)
    assert m.stop_reason == "end_turn"
    assert m.content[0].text.startswith('[claude-haiku-4-5] The tool returned: "Foggy, 17 C". ')
    assert m.usage.input_tokens == (
        prompt_tokens(
            "Lima weather now?", "get_weather" + json.dumps({"city": "Lima"}), "Foggy, 17 C", tools=[WEATHER_TOOL_ANTHROPIC]
        )
    )
    count = claude(sim).messages.count_tokens(model="claude-haiku-4-5", tools=[WEATHER_TOOL_ANTHROPIC], messages=messages)
    assert count.input_tokens == m.usage.input_tokens
