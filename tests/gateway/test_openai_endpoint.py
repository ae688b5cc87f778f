"""/v1/chat/completions through the official OpenAI SDK, for every provider family."""

import json
import time

import httpx
import openai
import pytest

from apps.routing.services import routing_settings_update

PROMPT = "Where is my new debit card?"
FAMILIES = ["gpt-4o-mini", "claude-haiku-4-5", "gemini-2.5-flash", "llama-3.1-8b-instruct"]


def sdk(live, **kw) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live.url}/v1", api_key=live.raw_key, max_retries=0, **kw)


def direct_usage(simulator: str, model: str, messages: list[dict]) -> tuple[int, int]:
    """What the simulator counts for the same conversation, asked over its OpenAI route."""
    body = httpx.post(f"{simulator}/v1/chat/completions", json={"model": model, "messages": messages}).json()
    return body["usage"]["prompt_tokens"], body["usage"]["completion_tokens"]


@pytest.mark.parametrize("model", FAMILIES)
def test_completion_for_each_provider_family(live, simulator, model):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": PROMPT}]
    raw = sdk(live).chat.completions.with_raw_response.create(model=model, messages=messages)
    completion = raw.parse()
    assert PROMPT in completion.choices[0].message.content
    assert completion.model == model
    assert completion.choices[0].finish_reason == "stop"
    assert raw.headers["x-aka-model"] == model
    assert raw.headers["x-aka-cache"] == "miss"
    assert raw.headers["x-request-id"].startswith("req_")

    [row] = live.records()
    assert (row.model_requested, row.model_served, row.status_code, row.billable) == (model, model, 200, True)
    assert (row.prompt_tokens, row.completion_tokens) == (completion.usage.prompt_tokens,
                                                        completion.usage.completion_tokens)
    assert row.request_id == raw.headers["x-request-id"]
    assert row.price_cents == 10 and row.stream is False and row.prompt is None
    assert float(raw.headers["x-aka-cost-usd"]) == pytest.approx(float(row.provider_cost_micros) / 1e6, abs=1e-8)


def test_usage_equals_the_simulators_count(live, simulator):
    messages = [{"role": "user", "content": PROMPT}]
    completion = sdk(live).chat.completions.create(model="gpt-4o", messages=messages)
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == direct_usage(
        simulator, "gpt-4o", messages)
    [row] = live.records()
    # gpt-4o: $2.50 / $10 per million tokens = 2.5 / 10 micro-dollars per token.
    expected = completion.usage.prompt_tokens * 2.5 + completion.usage.completion_tokens * 10
    assert float(row.provider_cost_micros) == expected


@pytest.mark.parametrize("model", FAMILIES)
def test_stream_for_each_provider_family(live, model):
    client = sdk(live, default_headers={"x-aka-cache": "off"})  # both calls reach the provider
    whole = client.chat.completions.create(model=model, messages=[{"role": "user", "content": PROMPT}])
    chunks = list(client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": PROMPT}], stream=True,
        stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    rows = live.records(expected=2)
    assert [r.stream for r in rows] == [False, True]
    assert rows[1].completion_tokens == whole.usage.completion_tokens and rows[1].status_code == 200
    assert rows[1].ttft_ms is not None and rows[1].billable


def test_stream_without_include_usage_has_no_usage_chunk(live):
    chunks = list(sdk(live).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": PROMPT}], stream=True))
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)
    [row] = live.records()
    assert row.completion_tokens > 0  # the gateway always learns the usage itself


WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-haiku-4-5", "gemini-2.5-flash"])
def test_tool_call_and_tool_result_round_trip(live, model):
    client = sdk(live)
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER_TOOL])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls
    assert call.function.name == "get_weather" and call.id
    messages += [choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"}]
    second = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER_TOOL])
    assert "18C and sunny" in second.choices[0].message.content


def test_streamed_tool_call(live):
    chunks = list(sdk(live).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "weather in Oslo?"}], tools=[WEATHER_TOOL],
        stream=True))
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls[0].function.name == "get_weather"
    arguments = "".join(tc.function.arguments or "" for tc in calls)
    assert "city" in arguments
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_prompt_logged_when_the_tenant_turned_it_on(live):
    live.tenant.log_prompts = True
    live.tenant.save()  # before the key's first use, so no process has it cached
    sdk(live).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": PROMPT}])
    [row] = live.records()
    assert row.prompt == PROMPT


def test_logprobs_are_passed_through(live):
    completion = sdk(live).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": PROMPT}], logprobs=True, top_logprobs=2)
    tokens = completion.choices[0].logprobs.content
    assert len(tokens) == completion.usage.completion_tokens
    assert all(t.logprob <= 0 and len(t.top_logprobs) == 2 for t in tokens)


def test_json_response_format(live):
    completion = sdk(live).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": PROMPT}], response_format={"type": "json_object"})
    assert PROMPT in json.loads(completion.choices[0].message.content)["answer"]


@pytest.mark.parametrize(("asked", "lacking"), [({"response_format": {"type": "json_object"}}, "json"),
                                                ({"logprobs": True}, "logprobs")])
def test_a_named_model_lacking_what_the_request_needs_refuses_it(live, asked, lacking):
    with pytest.raises(openai.BadRequestError) as refused:   # not an answer with the JSON mode or logprobs dropped
        sdk(live).chat.completions.create(model="claude-haiku-4-5", messages=[{"role": "user", "content": PROMPT}],
                                          **asked)
    assert (refused.value.code, refused.value.param) == ("unsupported_parameter", "model")
    assert refused.value.body["message"] == f"The model 'claude-haiku-4-5' cannot serve this request (it lacks {lacking})."
    [row] = live.records()
    assert (row.status_code, row.billable) == (400, False)


AUDIO = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
PDF = {"type": "file", "file": {"filename": "card.pdf", "file_data": "data:application/pdf;base64,AAAA"}}


@pytest.mark.parametrize(("model", "part", "lacking"), [("claude-haiku-4-5", AUDIO, "audio"),
                                                        ("gemini-2.5-flash", PDF, "file"),
                                                        ("gpt-4o-mini", AUDIO, "audio")])
def test_a_part_the_named_model_cannot_read_is_refused_not_dropped(live, model, part, lacking):
    with pytest.raises(openai.BadRequestError) as refused:
        sdk(live).chat.completions.create(model=model, messages=[{"role": "user", "content": [
            {"type": "text", "text": PROMPT}, part]}])
    assert refused.value.body["message"] == f"The model '{model}' cannot serve this request (it lacks {lacking})."


def test_a_file_part_goes_to_a_model_that_reads_files(live):
    completion = sdk(live).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": [
        {"type": "text", "text": PROMPT}, PDF]}])
    assert completion.choices[0].finish_reason == "stop"


@pytest.mark.parametrize(("asked", "param"), [({"stream": True, "stream_options": {"include_usage": "false"}},
                                                "stream_options.include_usage"),
                                               ({"stream_options": {"include_usage": True}}, "stream_options")])
def test_stream_options_are_read_strictly(live, asked, param):
    response = httpx.post(f"{live.url}/v1/chat/completions", headers={"authorization": f"Bearer {live.raw_key}"},
                          json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": PROMPT}], **asked})
    assert (response.status_code, response.json()["error"]["param"]) == (400, param)


def test_max_tokens_truncates_with_finish_reason_length(live):
    completion = sdk(live).chat.completions.create(
        model="gemini-2.5-flash", messages=[{"role": "user", "content": PROMPT}], max_tokens=4)
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 4


def test_models_list(live):
    ids = [m.id for m in sdk(live).models.list()]
    assert ids[0] == "auto"
    assert {"gpt-4o", "claude-haiku-4-5", "gemini-2.5-flash", "text-embedding-3-small"} <= set(ids)
    assert live.records(expected=0, timeout=0.2) == []  # listing models is not a billable call


def test_one_model_is_retrieved_by_its_name(live):
    # SDKs and frameworks check a model name this way before they use it.
    model = sdk(live).models.retrieve("gemini-2.5-flash")
    assert (model.id, model.object, model.owned_by) == ("gemini-2.5-flash", "model", "akarouter")
    assert sdk(live).models.retrieve("auto").id == "auto"
    with pytest.raises(openai.NotFoundError) as err:
        sdk(live).models.retrieve("gpt-9")
    assert err.value.body["code"] == "model_not_found" and "'gpt-9'" in err.value.body["message"]
    for path in ("/v1/models/gpt-4o/x", "/v1/models/"):   # not a model's URL: the gateway's own 404
        answer = httpx.get(f"{live.url}{path}", headers={"authorization": f"Bearer {live.raw_key}"})
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "unknown_url"
    answer = httpx.get(f"{live.url}/v1/models/gpt-4o%00")
    assert answer.status_code == 401 and answer.json()["error"]["type"] == "invalid_request_error"
    for method in ("DELETE", "POST"):   # models.delete and the like: nothing here to change
        answer = httpx.request(method, f"{live.url}/v1/models/gpt-4o", headers={"authorization": f"Bearer {live.raw_key}"})
        assert answer.status_code == 405 and "Use GET" in answer.json()["error"]["message"]
    assert live.records(expected=0, timeout=0.2) == []


def test_a_tenants_aliases_are_listed_and_retrieved_as_the_names_it_may_call(live):
    routing_settings_update(tenant=live.tenant, aliases={"aka:support": ["gpt-4o-mini", "gpt-4o"]})
    time.sleep(0.6)   # the gateway's settings snapshot lives AKA_KEY_CACHE_TTL (0.5 s in tests)
    assert [m.id for m in sdk(live).models.list()][:2] == ["auto", "aka:support"]
    assert sdk(live).models.retrieve("aka:support").id == "aka:support"


def test_auto_is_served_by_the_default_model(live):
    completion = sdk(live).chat.completions.create(model="auto", messages=[{"role": "user", "content": PROMPT}])
    assert completion.model == "gpt-4o-mini"
    [row] = live.records()
    assert (row.model_requested, row.model_served) == ("auto", "gpt-4o-mini")


def test_embeddings(live, simulator):
    raw = sdk(live).embeddings.with_raw_response.create(model="text-embedding-3-small",
                                                        input=["card arrival", "card delivery"])
    result = raw.parse()
    assert [len(d.embedding) for d in result.data] == [1536, 1536]
    assert result.model == "text-embedding-3-small" and raw.headers["x-aka-model"] == "text-embedding-3-small"
    [row] = live.records()
    assert (row.endpoint, row.prompt_tokens, row.completion_tokens) == ("embeddings", result.usage.prompt_tokens, 0)
    assert float(row.provider_cost_micros) == result.usage.prompt_tokens * 0.02


def test_chat_model_cannot_embed(live):
    with pytest.raises(openai.NotFoundError):
        sdk(live).embeddings.create(model="gpt-4o-mini", input="x")
