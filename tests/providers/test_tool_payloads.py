"""What reaches each upstream of a request's tools: a failed tool result stays one, the
choice of one tool call at a time follows the request to every upstream that has it, and
Gemini is sent the schema as JSON Schema."""

import orjson

from apps.gateway.anthropic_wire import parse_messages
from apps.providers.adapters.anthropic import AnthropicAdapter
from apps.providers.adapters.gemini import GeminiAdapter
from apps.providers.adapters.openai import OpenAIAdapter
from tests.providers.test_sampling_payloads import model

STRICT = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
          "additionalProperties": False, "$schema": "http://json-schema.org/draft-07/schema#"}


def messages_body(**fields) -> bytes:
    return orjson.dumps({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}],
                         "tools": [{"name": "weather", "input_schema": STRICT}], **fields})


def test_one_tool_call_at_a_time_reaches_openai_and_anthropic_upstreams():
    req = parse_messages(messages_body(tool_choice={"type": "any", "disable_parallel_tool_use": True}))
    assert OpenAIAdapter("openai").payload(req, model("openai"))["parallel_tool_calls"] is False
    assert AnthropicAdapter("anthropic").payload(req, model("anthropic"))["tool_choice"] == {
        "type": "any", "disable_parallel_tool_use": True}
    auto = parse_messages(messages_body(tool_choice={"type": "auto", "disable_parallel_tool_use": True}))
    assert AnthropicAdapter("anthropic").payload(auto, model("anthropic"))["tool_choice"] == {
        "type": "auto", "disable_parallel_tool_use": True}
    free = parse_messages(messages_body(tool_choice={"type": "any"}))
    assert "parallel_tool_calls" not in OpenAIAdapter("openai").payload(free, model("openai"))


def test_gemini_is_sent_the_tools_schema_as_json_schema():
    """Sent as `parameters` (an OpenAPI subset), a schema with additionalProperties or
    $schema was refused with a 400, and no fallback followed."""
    [tools] = GeminiAdapter("gemini").payload(parse_messages(messages_body()), model("gemini"))["tools"]
    [declaration] = tools["functionDeclarations"]
    assert declaration["parametersJsonSchema"] == STRICT and "parameters" not in declaration


def test_a_failed_tool_result_reaches_the_model_as_a_failure():
    req = parse_messages(orjson.dumps({"model": "m", "max_tokens": 10, "messages": [
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "is_error": True,
                                      "content": [{"type": "text", "text": "city not found"}]}]}]}))
    assert req.messages == [{"role": "tool", "tool_call_id": "t1", "content": "Error: city not found"}]
    [turn] = AnthropicAdapter("anthropic").payload(req, model("anthropic"))["messages"]
    assert turn["content"][0]["content"] == "Error: city not found"


def test_a_tool_results_image_reaches_the_model_after_the_turns_tool_messages():
    """It was dropped: the model answered without it, and two results differing only in
    their image shared one exact cache key."""
    screenshot = {"type": "image", "source": {"type": "url", "url": "https://example.com/screen.png"}}
    turn = [{"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "shot"}, screenshot]},
            {"type": "tool_result", "tool_use_id": "t2", "content": "ok"},
            {"type": "text", "text": "What do you see?"}]
    req = parse_messages(orjson.dumps({"model": "m", "max_tokens": 10, "messages": [
        {"role": "user", "content": turn}], "tools": [{"name": "shoot", "input_schema": {"type": "object"},
                                                       "type": None}]}))
    assert req.messages == [
        {"role": "tool", "tool_call_id": "t1", "content": "shot"},
        {"role": "tool", "tool_call_id": "t2", "content": "ok"},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/screen.png"}},
                                     {"type": "text", "text": "What do you see?"}]}]
    sent = AnthropicAdapter("anthropic").payload(req, model("anthropic"))["messages"]
    assert [block["type"] for turn in sent for block in turn["content"]] == ["tool_result", "tool_result", "image",
                                                                             "text"]
