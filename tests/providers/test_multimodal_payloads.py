"""What a request asks for reaches the upstream that serves it: images (inline or by URL) and
a JSON schema go to Gemini in its own fields, images to Anthropic; and a model that cannot
serve part of the request is never a fallback for it (it would drop that part and answer)."""

from apps.core.llm import ChatRequest
from apps.providers.adapters.anthropic import AnthropicAdapter
from apps.providers.adapters.gemini import GeminiAdapter
from tests.providers.test_sampling_payloads import model

PNG = "data:image/png;base64,iVBORw0KGgo="
PHOTO = "https://example.com/cat.webp"
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def looking(**fields) -> ChatRequest:
    return ChatRequest(model="m", max_tokens=10, messages=[{"role": "user", "content": [
        {"type": "text", "text": "Which is nicer?"}, {"type": "image_url", "image_url": {"url": PNG}},
        {"type": "image_url", "image_url": PHOTO}]}], **fields)


def test_gemini_gets_the_images_in_order_and_the_schema():
    body = GeminiAdapter("gemini").payload(looking(response_format={
        "type": "json_schema", "json_schema": {"name": "pick", "schema": SCHEMA}}), model("gemini"))
    assert body["contents"] == [{"role": "user", "parts": [
        {"text": "Which is nicer?"}, {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
        {"fileData": {"mimeType": "image/webp", "fileUri": PHOTO}}]}]
    assert body["generationConfig"]["responseMimeType"] == "application/json"
    assert body["generationConfig"]["responseJsonSchema"] == SCHEMA


def test_anthropic_gets_the_images_in_order():
    [turn] = AnthropicAdapter("anthropic").payload(looking(), model("anthropic"))["messages"]
    assert turn["content"][1:] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": PHOTO}}]


def test_a_request_needs_what_it_asks_for():
    assert ChatRequest(model="m", messages=[{"role": "user", "content": "hi"}]).needs() == frozenset()
    assert looking().needs() == {"vision"}
    assert looking(response_format={"type": "json_object"}, logprobs=True, tools=[{"type": "function"}]).needs() == {
        "vision", "json", "logprobs", "tools"}
    assert looking(response_format={"type": "text"}).needs() == {"vision"}


def test_a_json_schema_format_without_a_schema_asks_gemini_for_json_alone():
    body = GeminiAdapter("gemini").payload(looking(response_format={"type": "json_schema", "json_schema": {
        "name": "pick"}}), model("gemini"))   # the schema is optional in OpenAI's API
    assert body["generationConfig"]["responseMimeType"] == "application/json"
    assert "responseJsonSchema" not in body["generationConfig"]
