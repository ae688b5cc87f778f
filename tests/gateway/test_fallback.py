"""Retries and fallbacks before the first byte; none after it."""

import asyncio
import json
import time

import anthropic
import httpx
import openai
import orjson
import pytest

from apps.core.llm import Usage
from apps.providers.catalog import amodels
from apps.routing import breaker
from tests.gateway.inprocess import through_handler


def sdk(live) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live.url}/v1", api_key=live.raw_key, max_retries=0)


@pytest.mark.parametrize("kind", ["500", "429", "stall", "reset"])
def test_fallback_when_the_primary_fails(live, sim, kind):
    raw = sdk(live).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": f"card? [[fault:{kind} model=gpt-4o-mini]]"}])
    assert raw.headers["x-aka-model"] == "claude-haiku-4-5"
    assert raw.parse().model == "claude-haiku-4-5"
    [row] = live.records()
    assert (row.model_requested, row.model_served, row.status_code) == ("gpt-4o-mini", "claude-haiku-4-5", 200)
    # A stall is not retried on the same model; the others are retried twice first.
    assert row.attempts == (2 if kind == "stall" else 4)


def test_retry_succeeds_on_the_same_model(live, sim):
    completion = sdk(live).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "pin? [[fault:500 times=2]]"}])
    assert completion.model == "gpt-4o-mini"
    [row] = live.records()
    assert row.attempts == 3 and row.model_served == "gpt-4o-mini"


def test_stream_falls_back_before_the_first_byte(live, sim):
    chunks = list(sdk(live).chat.completions.create(
        model="gpt-4o-mini", stream=True,
        messages=[{"role": "user", "content": "limits? [[fault:500 model=gpt-4o-mini]]"}]))
    assert {c.model for c in chunks} == {"claude-haiku-4-5"}
    assert "limits?" in "".join(c.choices[0].delta.content or "" for c in chunks)


def test_no_fallback_after_the_first_byte(live, sim):
    stream = sdk(live).chat.completions.create(
        model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "fees? [[fault:cut]]"}])
    received = []
    with pytest.raises(openai.APIError):
        for chunk in stream:
            received.append(chunk)
    assert received  # part of the answer arrived before the cut
    [row] = live.records()
    assert (row.status_code, row.error_type, row.billable, row.model_served) == (
        502, "upstream_stream_cut", False, "gpt-4o-mini")
    stats = httpx.get(f"{sim}/_sim/stats").json()
    assert stats["requests"] == {"gpt-4o-mini": 1}


CHAINS = [("gpt-4o-mini", "claude-haiku-4-5"), ("claude-haiku-4-5", "gpt-4o-mini"), ("gemini-2.5-flash", "gpt-4o-mini")]


@pytest.mark.parametrize("model, fallback", CHAINS)
def test_stream_falls_back_from_a_chunk_it_cannot_read_before_the_first_byte(live, sim, model, fallback):
    # The upstream's stream opens with a proxy's HTML page: retried, then the next model answers.
    chunks = list(sdk(live).chat.completions.create(
        model=model, stream=True, messages=[{"role": "user", "content": f"limits? [[fault:junk model={model}]]"}]))
    assert {c.model for c in chunks} == {fallback}
    assert "limits?" in "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    [row] = live.records()
    assert (row.model_requested, row.model_served, row.status_code, row.attempts) == (model, fallback, 200, 4)


@pytest.mark.parametrize("model", [model for model, _ in CHAINS])
def test_a_chunk_it_cannot_read_after_the_first_byte_is_an_upstream_error_event(live, sim, model):
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": "fees? [[fault:late-junk]]"}]}
    with httpx.stream("POST", f"{live.url}/v1/chat/completions", json=body,
                      headers={"authorization": f"Bearer {live.raw_key}"}) as response:
        events = [json.loads(line.removeprefix("data: ")) for line in response.iter_lines() if line.startswith("data: ")]
    *answer, last = events
    assert "".join(e["choices"][0]["delta"].get("content") or "" for e in answer)   # part of the answer arrived
    assert last["error"]["code"] == "upstream_error"
    assert last["error"]["message"].startswith("The upstream provider failed: unreadable upstream answer")
    [row] = live.records()
    assert (row.status_code, row.error_type, row.billable, row.model_served) == (502, "upstream_stream_cut", False, model)
    assert httpx.get(f"{sim}/_sim/stats").json()["requests"] == {model: 1}


@pytest.mark.parametrize("kind, prompt_tokens", [("cut", 7), ("late-junk", 9)])
def test_a_stream_that_fails_after_its_first_tokens_costs_what_was_sent_and_tells_the_breaker(
        live, sim, settings, monkeypatch, kind, prompt_tokens):
    """Run in this process, so that its circuit breakers can be read."""
    settings.AKA_SIMULATOR_URL, settings.AKA_BREAKER_FAILURES = sim, 1
    monkeypatch.setattr(breaker, "_circuits", {})
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"fees? [[fault:{kind}]]"}]
    status, headers, body = through_handler(
        "/v1/chat/completions", orjson.dumps({"model": "gpt-4o-mini", "stream": True, "messages": messages}),
        [(b"authorization", f"Bearer {live.raw_key}".encode())])

    *answer, last = [orjson.loads(line.removeprefix(b"data: ")) for line in body.splitlines() if line.startswith(b"data: ")]
    received = sum(1 for event in answer if event["choices"][0]["delta"].get("content"))
    assert status == 200 and received and last["error"]["code"] == "upstream_error"
    [row] = live.records()
    assert (row.request_id, row.status_code, row.error_type, row.billable, row.price_cents) == (
        headers["x-request-id"], 502, "upstream_stream_cut", False, 0)
    # Charged for its input (the gateway's estimate: characters / 4 of the messages' text, as the
    # usage never came) and one token per piece of text received.
    assert (row.model_served, row.prompt_tokens, row.completion_tokens) == ("gpt-4o-mini", prompt_tokens, received)
    model = asyncio.run(amodels())["gpt-4o-mini"]
    assert row.provider_cost_micros == model.cost_micros(Usage(prompt_tokens, received)) > 0
    assert breaker.state("gpt-4o-mini") == "open"


def test_anthropic_stream_cut_is_an_error_event(live, sim):
    client = anthropic.Anthropic(base_url=live.url, api_key=live.raw_key, max_retries=0)
    with pytest.raises(anthropic.APIError):
        with client.messages.stream(model="claude-haiku-4-5", max_tokens=200,
                                    messages=[{"role": "user", "content": "fees? [[fault:cut]]"}]) as stream:
            for _ in stream:
                pass
    [row] = live.records()
    assert row.status_code == 502 and row.error_type == "upstream_stream_cut"


def test_client_disconnect_mid_stream_is_recorded_once(live, sim):
    body = {"model": "gpt-4o", "stream": True,
            "messages": [{"role": "user", "content": "slow one [[pace:tps=20]]"}]}
    with httpx.stream("POST", f"{live.url}/v1/chat/completions", json=body,
                      headers={"authorization": f"Bearer {live.raw_key}"}) as response:
        assert response.status_code == 200
        next(response.iter_raw())  # the first bytes, then hang up
    [row] = live.records()
    assert (row.status_code, row.error_type, row.billable) == (499, "client_closed", False)
    assert live.records(expected=2, timeout=0.5) == [row]
    # Hanging up closed the upstream stream too: the provider stopped generating.
    deadline = time.monotonic() + 3
    while httpx.get(f"{sim}/_sim/stats").json()["cancelled"].get("gpt-4o") != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert httpx.get(f"{sim}/_sim/stats").json()["cancelled"] == {"gpt-4o": 1}


def test_a_fallback_that_would_drop_the_json_format_is_skipped(live, sim):
    # gpt-4o-mini's fallbacks are claude-haiku-4-5 (no JSON mode) and gemini-2.5-flash.
    raw = sdk(live).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", response_format={"type": "json_object"},
        messages=[{"role": "user", "content": "card as JSON? [[fault:500 model=gpt-4o-mini]]"}])
    assert raw.headers["x-aka-model"] == "gemini-2.5-flash"
    [row] = live.records()
    assert (row.model_served, row.status_code) == ("gemini-2.5-flash", 200)
