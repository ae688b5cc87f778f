"""/v1/messages through the official Anthropic SDK."""

import time

import anthropic
import httpx
import httpx2
import openai
import orjson
import pytest

from apps.cache.models import CacheEntry
from apps.core.errors import ApiError
from apps.core.llm import ChatRequest, Delta, estimated_tokens
from apps.gateway import anthropic_wire
from apps.gateway.anthropic_wire import EventWriter
from apps.routing.services import routing_settings_update

PROMPT = "Can I get a refund for a duplicate charge?"


def sdk(live, **kw) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=live.url, api_key=live.raw_key, max_retries=0, **kw)


def wait_for_the_cache_entry(live) -> None:
    """Written after the ledger row, a moment after the answer."""
    live.records()
    deadline = time.monotonic() + 3
    while not CacheEntry.objects.for_tenant(live.tenant).exists() and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.mark.parametrize("model", ["claude-haiku-4-5", "gpt-4o-mini", "gemini-2.5-flash"])
def test_message_for_each_provider_family(live, model):
    raw = sdk(live).messages.with_raw_response.create(
        model=model, max_tokens=256, system="Be brief.", messages=[{"role": "user", "content": PROMPT}])
    message = raw.parse()
    assert message.type == "message" and message.role == "assistant" and message.model == model
    assert PROMPT in message.content[0].text
    assert message.stop_reason == "end_turn"
    assert raw.headers["x-aka-model"] == model
    [row] = live.records()
    assert row.endpoint == "messages"
    assert (row.prompt_tokens, row.completion_tokens) == (message.usage.input_tokens, message.usage.output_tokens)


@pytest.mark.parametrize("model", ["claude-haiku-4-5", "gpt-4o-mini"])
def test_stream_events_and_usage(live, model):
    client = sdk(live, default_headers={"x-aka-cache": "off"})  # both calls reach the provider
    whole = client.messages.create(model=model, max_tokens=256, messages=[{"role": "user", "content": PROMPT}])
    with client.messages.stream(model=model, max_tokens=256, messages=[{"role": "user", "content": PROMPT}]) as s:
        kinds = [event.type for event in s]
        final = s.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert {"content_block_start", "content_block_delta", "content_block_stop", "message_delta"} <= set(kinds)
    assert final.content[0].text == whole.content[0].text
    # Anthropic's counts are cumulative; the gateway must not add them up twice.
    assert final.usage.output_tokens == whole.usage.output_tokens
    assert final.usage.input_tokens == whole.usage.input_tokens
    rows = live.records(expected=2)
    assert rows[1].stream and rows[1].completion_tokens == whole.usage.output_tokens


def test_the_sdk_reads_the_request_id_of_an_answer_and_of_an_error(live):
    client = sdk(live)
    raw = client.messages.with_raw_response.create(model="claude-haiku-4-5", max_tokens=20,
                                                   messages=[{"role": "user", "content": PROMPT}])
    assert raw.parse()._request_id == raw.headers["x-request-id"]
    with pytest.raises(anthropic.NotFoundError) as err:
        client.messages.create(model="no-such-model", max_tokens=20, messages=[{"role": "user", "content": PROMPT}])
    assert err.value.request_id == err.value.response.headers["x-request-id"]
    assert err.value.request_id.startswith("req_")
    # As Anthropic's: the error body names the call too, by the same id.
    assert err.value.body == {"type": "error", "request_id": err.value.request_id, "error": {
        "type": "not_found_error", "message": "The model 'no-such-model' does not exist or you do not have access to it."}}


def test_message_start_carries_the_input_tokens_estimated_or_replayed(live):
    body = {"model": "claude-haiku-4-5", "max_tokens": 50, "stream": True, "messages": [{"role": "user", "content": PROMPT}]}

    def started() -> int:
        with httpx.stream("POST", f"{live.url}/v1/messages", json=body, timeout=30,
                          headers={"x-api-key": live.raw_key, "anthropic-version": "2023-06-01"}) as response:
            first = [line for line in response.iter_lines() if line.startswith("data: ")][0]   # read whole: answered
        return orjson.loads(first[6:])["message"]["usage"]["input_tokens"]

    assert started() == estimated_tokens(PROMPT)   # fresh: before the provider has counted
    wait_for_the_cache_entry(live)
    counted = live.records()[0].prompt_tokens
    assert counted != estimated_tokens(PROMPT) and started() == counted   # replayed: the stored answer's count


def test_more_than_four_stop_sequences_are_taken(live):   # OpenAI's limit, not Anthropic's
    stops = ["a1", "b2", "c3", "d4", "e5"]
    message = sdk(live).messages.create(model="claude-haiku-4-5", max_tokens=50, stop_sequences=stops,
                                        messages=[{"role": "user", "content": PROMPT}])
    assert message.type == "message"
    with pytest.raises(openai.BadRequestError) as refused:
        openai.OpenAI(base_url=f"{live.url}/v1", api_key=live.raw_key, max_retries=0).chat.completions.create(
            model="claude-haiku-4-5", stop=stops, messages=[{"role": "user", "content": PROMPT}])
    assert refused.value.body["message"] == "'stop' must be a string or a list of up to 4 strings."


def test_max_tokens_truncation_maps_to_max_tokens(live):
    message = sdk(live).messages.create(model="claude-haiku-4-5", max_tokens=3,
                                        messages=[{"role": "user", "content": PROMPT}])
    assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 3


def test_a_stop_sequence_that_fired_is_named_whole_streamed_and_from_the_cache(live):
    client = sdk(live)
    ask = {"model": "claude-haiku-4-5", "max_tokens": 100, "stop_sequences": ["three"],
           "messages": [{"role": "user", "content": "Say three words please"}]}
    whole = client.messages.create(**ask)
    wait_for_the_cache_entry(live)
    with client.messages.stream(**ask) as stream:   # the cache's replay, as a fresh stream
        replayed = stream.get_final_message()
    with sdk(live, default_headers={"x-aka-cache": "off"}).messages.stream(**ask) as stream:
        streamed = stream.get_final_message()
    assert [row.cache for row in live.records(expected=3)] == ["miss", "exact", "off"]
    for message in (whole, replayed, streamed):
        assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "three")
    # OpenAI's API has no such reason; nor do OpenAI's and Gemini's answers say which sequence matched.
    chat = openai.OpenAI(base_url=f"{live.url}/v1", api_key=live.raw_key, max_retries=0).chat.completions.create(
        model="claude-haiku-4-5", stop=["three"], messages=ask["messages"])
    assert chat.choices[0].finish_reason == "stop"
    other = client.messages.create(**{**ask, "model": "gpt-4o-mini"})
    assert (other.stop_reason, other.stop_sequence) == ("end_turn", None)


def test_tool_use(live):
    tool = {"name": "get_weather", "description": "weather",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
    client = sdk(live)
    message = client.messages.create(model="claude-haiku-4-5", max_tokens=256, tools=[tool],
                                     messages=[{"role": "user", "content": "weather in Rome?"}])
    assert message.stop_reason == "tool_use"
    [use] = [b for b in message.content if b.type == "tool_use"]
    assert use.name == "get_weather" and "city" in use.input
    follow = client.messages.create(model="claude-haiku-4-5", max_tokens=256, tools=[tool], messages=[
        {"role": "user", "content": "weather in Rome?"},
        {"role": "assistant", "content": [b.model_dump() for b in message.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "25C clear"}]},
    ])
    assert "25C clear" in follow.content[0].text


def test_a_named_model_that_reads_no_images_refuses_one_in_anthropic_shape(live):
    picture = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA"}}
    with pytest.raises(anthropic.BadRequestError) as refused:
        sdk(live).messages.create(model="llama-3.1-8b-instruct", max_tokens=20, messages=[
            {"role": "user", "content": [{"type": "text", "text": PROMPT}, picture]}])
    assert refused.value.body == {"type": "error", "request_id": refused.value.request_id, "error": {
        "type": "invalid_request_error",
        "message": "The model 'llama-3.1-8b-instruct' cannot serve this request (it lacks vision)."}}


def test_tool_call_fragments_make_one_tool_use_block_per_call_even_when_each_repeats_the_id():
    writer = EventWriter("msg_x", 0, "m", ChatRequest(model="m", messages=[]), None)
    out = writer.start()
    for index, call_id in ((0, "call_1"), (1, "call_2")):
        out += writer.delta(Delta(tool_calls=[{"index": index, "id": call_id, "function": {"name": "f", "arguments": '{"a"'}}]))
        out += writer.delta(Delta(tool_calls=[{"index": index, "id": call_id, "function": {"arguments": ": 1}"}}]))
    starts = [orjson.loads(line[6:]) for line in out.decode().splitlines() if '"content_block_start"' in line]
    assert [(s["index"], s["content_block"]["id"]) for s in starts] == [(0, "call_1"), (1, "call_2")]


def test_missing_max_tokens_is_a_400_in_anthropic_shape(live):
    response = httpx.post(f"{live.url}/v1/messages", headers={"x-api-key": live.raw_key},
                          json={"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 400
    assert response.json() == {"type": "error", "error": {"type": "invalid_request_error",
                                                          "message": "max_tokens: Field required"},
                               "request_id": response.headers["request-id"]}
    [row] = live.records()
    assert (row.status_code, row.billable) == (400, False)


# Each refusal the gateway answers, as the Anthropic SDK raises it, with the `type` Anthropic
# documents for the status: invalid_request_error for a 4xx it does not list (408, 431), and
# timeout_error (the SDK's GatewayTimeoutError) for a 504.
@pytest.mark.parametrize("status, raised, kind", [
    (400, anthropic.BadRequestError, "invalid_request_error"),
    (401, anthropic.AuthenticationError, "authentication_error"),
    (402, anthropic.PaymentRequiredError, "billing_error"),
    (403, anthropic.PermissionDeniedError, "permission_error"),
    (404, anthropic.NotFoundError, "not_found_error"),
    (405, anthropic.APIStatusError, "invalid_request_error"),
    (408, anthropic.RequestTimeoutError, "invalid_request_error"),
    (413, anthropic.ContentTooLargeError, "request_too_large"),
    (429, anthropic.RateLimitError, "rate_limit_error"),
    (431, anthropic.RequestHeaderFieldsTooLargeError, "invalid_request_error"),
    (500, anthropic.InternalServerError, "api_error"),
    (502, anthropic.InternalServerError, "api_error"),
    (503, anthropic.ServiceUnavailableError, "overloaded_error"),
    (504, anthropic.GatewayTimeoutError, "timeout_error"),
])
def test_each_error_reaches_the_sdk_with_anthropics_type(status, raised, kind):
    body = anthropic_wire.error_body(ApiError(status, "refused"), "req_1")
    answer = httpx2.MockTransport(lambda request: httpx2.Response(status, content=body, headers={"request-id": "req_1"}))
    client = anthropic.Anthropic(base_url="http://gateway", api_key="aka_x", max_retries=0,
                                 http_client=httpx2.Client(transport=answer))
    with pytest.raises(raised) as err:
        client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert type(err.value) is raised
    # The header's id is the SDK's request_id; the body must name the same call.
    assert (err.value.status_code, err.value.type, err.value.api_message, err.value.request_id) == (
        status, kind, "refused", "req_1")
    assert err.value.body["request_id"] == "req_1"


def test_bad_key_is_401_in_anthropic_shape(live):
    client = anthropic.Anthropic(base_url=live.url, api_key="aka_nope", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as err:
        client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert err.value.body["error"]["type"] == "authentication_error"


def test_input_tokens_are_counted_by_the_models_provider_and_not_billed(live):
    client = sdk(live)
    conversation = {"system": "Be brief.", "messages": [{"role": "user", "content": PROMPT}]}
    for model in ("claude-haiku-4-5", "gemini-2.5-flash"):   # Anthropic's endpoint, Gemini's countTokens
        counted = client.messages.count_tokens(model=model, **conversation).input_tokens
        answered = client.messages.create(model=model, max_tokens=64, **conversation).usage.input_tokens
        assert counted == answered > 0, model
    longer = {**conversation, "messages": [{"role": "user", "content": PROMPT * 3}]}
    assert client.messages.count_tokens(model="claude-haiku-4-5", **longer).input_tokens > counted
    with pytest.raises(anthropic.BadRequestError) as err:   # not counted by another tokenizer either
        client.messages.count_tokens(model="gpt-4o-mini", **conversation)
    assert err.value.body["error"]["type"] == "invalid_request_error"
    assert "not available for 'gpt-4o-mini'" in err.value.body["error"]["message"]
    routing_settings_update(tenant=live.tenant, aliases={"aka:support": ["gpt-4o-mini", "claude-haiku-4-5"]},
                            allow_substitution=True)
    time.sleep(0.6)   # the gateway's settings snapshot lives AKA_KEY_CACHE_TTL (0.5 s in tests)
    # Which model answers is decided per prompt, as for a chat call: no one count. With
    # substitution allowed, a model of the tenant's pool (gpt-4o) is routed too.
    for routed in ("auto", "aka:support", "gpt-4o"):
        with pytest.raises(anthropic.BadRequestError) as err:
            client.messages.count_tokens(model=routed, **conversation)
        assert f"'{routed}' is routed per prompt" in err.value.body["error"]["message"]
    with pytest.raises(anthropic.NotFoundError):
        client.messages.count_tokens(model="claude-9", **conversation)
    with pytest.raises(anthropic.BadRequestError):
        client.messages.count_tokens(model="claude-haiku-4-5", messages=[])
    assert sorted(row.endpoint for row in live.records(expected=2)) == ["messages", "messages"]   # the two answers only


def test_models_list_in_anthropic_shape(live):
    ids = [m.id for m in sdk(live).models.list()]
    assert "auto" in ids and "claude-haiku-4-5" in ids


def test_one_model_is_retrieved_in_anthropic_shape(live):
    model = sdk(live).models.retrieve("claude-haiku-4-5")
    assert (model.type, model.id, model.display_name) == ("model", "claude-haiku-4-5", "claude-haiku-4-5")
    with pytest.raises(anthropic.NotFoundError) as err:
        sdk(live).models.retrieve("claude-9")
    assert err.value.body["error"]["type"] == "not_found_error"
