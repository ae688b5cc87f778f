"""Faults on demand (header, in-prompt marker, /_sim/faults), stats and cancellations."""

import json
import time

import anthropic
import httpx
import openai
import pytest

from tests.simulator.helpers import claude, oai, pieces, quote_prefix

MODEL = "gpt-4o-mini"


def ask(sim, text, model=MODEL, **kw):
    return oai(sim).chat.completions.create(model=model, messages=[{"role": "user", "content": text}], **kw)


def stats(sim):
    return httpx.get(f"{sim}/_sim/stats").json()


def test_429_rate_limit(sim):
    with pytest.raises(openai.RateLimitError) as err:
        ask(sim, "hi", extra_headers={"x-sim-fault": "429"})
    assert err.value.status_code == 429
    assert err.value.response.headers["retry-after"] == "1"
    assert err.value.code == "rate_limit_exceeded"
    with pytest.raises(anthropic.RateLimitError) as err:
        claude(sim).messages.create(
            model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "hi [[fault:429]]"}]
        )
    assert err.value.body["error"]["type"] == "rate_limit_error"
    assert err.value.response.headers["retry-after"] == "1"


def test_5xx(sim):
    with pytest.raises(openai.InternalServerError) as err:
        ask(sim, "hi [[fault:500]]")
    assert err.value.status_code == 500 and err.value.body["type"] == "server_error"
    with pytest.raises(openai.InternalServerError) as err:
        ask(sim, "hi", extra_headers={"x-sim-fault": "503"})
    assert err.value.status_code == 503
    with pytest.raises(anthropic.InternalServerError) as err:
        claude(sim).messages.create(
            model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "hi [[fault:500]]"}]
        )
    assert err.value.status_code == 500 and err.value.body["error"]["type"] == "api_error"
    with pytest.raises(openai.AuthenticationError):
        ask(sim, "hi [[fault:401]]")
    assert stats(sim)["faulted"] == {MODEL: 3, "claude-haiku-4-5": 1}
    assert stats(sim)["completed"] == {}


def test_reset_is_a_connection_error_not_a_500(sim):
    with pytest.raises(openai.APIConnectionError) as err:
        ask(sim, "hi [[fault:reset]]")
    assert not isinstance(err.value, openai.APITimeoutError)
    with pytest.raises(anthropic.APIConnectionError):
        claude(sim).messages.create(
            model="claude-haiku-4-5",
            max_tokens=10,
            stream=True,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-sim-fault": "reset"},
        )
    # Raw: no status line at all.
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        httpx.post(
            f"{sim}/v1/chat/completions",
            headers={"x-sim-fault": "reset"},
            json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
        )
    # The server is fine afterwards.
    assert ask(sim, "hi").choices[0].finish_reason == "stop"


def test_stall_trips_the_client_timeout(sim):
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        oai(sim, timeout=0.5).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi [[fault:stall]]"}])
    assert 0.5 <= time.monotonic() - started < 3
    with pytest.raises(anthropic.APITimeoutError):
        claude(sim, timeout=0.3).messages.create(
            model="claude-haiku-4-5",
            max_tokens=10,
            stream=True,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-sim-fault": "stall"},
        )
    assert ask(sim, "hi").choices[0].finish_reason == "stop"


def test_cut_mid_stream(sim):
    text = "Tell me a story [[fault:cut times=1]]"
    with pytest.raises(openai.APIConnectionError):
        received = []
        for chunk in ask(sim, text, stream=True):
            received.append(chunk.choices[0].delta.content or "")
    full = ask(sim, text).choices[0].message.content  # times=1: answered now
    expected = pieces(full)
    assert "".join(received) == "".join(expected[: len(expected) // 3])
    assert received[1:] == expected[: len(expected) // 3]

    # Anthropic: the SDK's iteration raises the transport error; no message_stop was seen.
    seen = []
    with pytest.raises(Exception) as err:
        for event in claude(sim).messages.create(
            model="claude-haiku-4-5",
            max_tokens=300,
            stream=True,
            messages=[{"role": "user", "content": "story"}],
            extra_headers={"x-sim-fault": "cut"},
        ):
            seen.append(event.type)
    assert type(err.value).__name__ == "RemoteProtocolError"
    assert seen[0] == "message_start" and "content_block_delta" in seen and "message_stop" not in seen

    # Gemini over SSE.
    with pytest.raises(httpx.RemoteProtocolError):
        with httpx.stream(
            "POST",
            f"{sim}/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
            json={"contents": [{"role": "user", "parts": [{"text": "x [[fault:cut]]"}]}]},
        ) as r:
            assert r.status_code == 200
            r.read()

    # Non-streaming: headers promise a length the body never reaches.
    with pytest.raises(openai.APIConnectionError):
        ask(sim, "hi", extra_headers={"x-sim-fault": "cut"})
    assert stats(sim)["completed"] == {MODEL: 1}
    assert stats(sim)["cancelled"] == {}


def data_lines(sim, fault):
    """The data lines of an OpenAI stream, as sent."""
    body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with httpx.stream("POST", f"{sim}/v1/chat/completions", json=body, headers={"x-sim-fault": fault}) as r:
        assert r.status_code == 200
        return [line.removeprefix("data: ") for line in r.iter_lines() if line.startswith("data: ")]


def test_junk_in_a_stream(sim):
    proxy_page = "<html>502 Bad Gateway</html>"
    early = data_lines(sim, "junk")
    assert early[0] == proxy_page and early[-1] == "[DONE]"   # then the whole answer
    late = data_lines(sim, "late-junk")
    at = late.index(proxy_page)
    texts = [json.loads(line)["choices"][0]["delta"].get("content") for line in late[:at]]
    assert texts[-1] and not any(texts[:-1])   # just after the first piece of text
    assert len(late) == len(early) and late[-1] == "[DONE]"   # the same answer around it

    # A whole answer is the page.
    r = httpx.post(f"{sim}/v1/chat/completions", json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
                   headers={"x-sim-fault": "junk"})
    assert (r.status_code, r.text) == (200, proxy_page)


def test_times_marker_then_normal_answers(sim):
    text = "retry me [[fault:500 times=2]]"
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            ask(sim, text)
    assert ask(sim, text).choices[0].message.content.startswith(quote_prefix(MODEL, text))
    # The counter is per (model, marker): another model starts from zero.
    with pytest.raises(openai.InternalServerError):
        ask(sim, text, model="gpt-4o")
    # An SDK with retries gets through a fault that fires twice.
    client = oai(sim, max_retries=2)
    r = client.chat.completions.create(model="gpt-4.1", messages=[{"role": "user", "content": text}])
    assert r.choices[0].finish_reason == "stop"
    s = stats(sim)
    assert s["requests"] == {MODEL: 3, "gpt-4o": 1, "gpt-4.1": 3}
    assert s["faulted"] == {MODEL: 2, "gpt-4o": 1, "gpt-4.1": 2}
    assert s["completed"] == {MODEL: 1, "gpt-4.1": 1}


def test_model_scoped_marker(sim):
    text = "fall back please [[fault:503 model=gpt-4o]]"
    with pytest.raises(openai.InternalServerError) as err:
        ask(sim, text, model="gpt-4o")
    assert err.value.status_code == 503
    assert ask(sim, text, model="gpt-4o-mini").choices[0].message.content.startswith(quote_prefix("gpt-4o-mini", text))
    m = claude(sim).messages.create(model="claude-haiku-4-5", max_tokens=50, messages=[{"role": "user", "content": text}])
    assert m.stop_reason in ("end_turn", "max_tokens")


def test_faults_api(sim):
    r = httpx.post(f"{sim}/_sim/faults", json={"model": "gpt-4.1", "kind": "429", "times": 1})
    assert r.status_code == 200
    assert r.json() == {"armed": [{"model": "gpt-4.1", "kind": "429", "times": 1}]}
    with pytest.raises(openai.RateLimitError):
        ask(sim, "hi", model="gpt-4.1")
    assert ask(sim, "hi", model="gpt-4.1").choices[0].finish_reason == "stop"
    assert ask(sim, "hi").choices[0].finish_reason == "stop"  # other models untouched

    assert httpx.post(f"{sim}/_sim/faults", json={"model": "*", "kind": 500, "times": None}).status_code == 200
    for model in ("gpt-4o", "gpt-4o-mini", "gpt-4o"):
        with pytest.raises(openai.InternalServerError):
            ask(sim, "hi", model=model)
    with pytest.raises(anthropic.InternalServerError):
        claude(sim).messages.create(model="claude-haiku-4-5", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    r = httpx.get(f"{sim}/_sim/faults").json()
    assert r["armed"] == [{"model": "gpt-4.1", "kind": "429", "times": 0}, {"model": "*", "kind": "500", "times": None}]
    assert httpx.delete(f"{sim}/_sim/faults").json() == {"armed": []}
    assert ask(sim, "hi", model="gpt-4o").choices[0].finish_reason == "stop"

    assert httpx.post(f"{sim}/_sim/faults", json={"model": "*", "kind": "boom"}).status_code == 400
    assert httpx.post(f"{sim}/_sim/faults", json={"kind": "reset", "times": -1}).status_code == 400

    # Embeddings honour armed faults too.
    httpx.post(f"{sim}/_sim/faults", json={"model": "text-embedding-3-small", "kind": "503", "times": 1})
    with pytest.raises(openai.InternalServerError):
        oai(sim).embeddings.create(model="text-embedding-3-small", input="x")
    assert len(oai(sim).embeddings.create(model="text-embedding-3-small", input="x").data) == 1


def test_reset_endpoint_clears_stats_and_faults(sim):
    ask(sim, "hi")
    httpx.post(f"{sim}/_sim/faults", json={"model": "*", "kind": "500"})
    assert stats(sim)["requests"] == {MODEL: 1}
    assert httpx.post(f"{sim}/_sim/reset").status_code == 200
    assert stats(sim) == {"requests": {}, "completed": {}, "cancelled": {}, "faulted": {}}
    assert httpx.get(f"{sim}/_sim/faults").json() == {"armed": []}
    assert ask(sim, "hi").choices[0].finish_reason == "stop"


def test_client_disconnect_counts_as_cancelled(sim):
    stream = ask(sim, "A long story please", stream=True, extra_headers={"x-sim-tokens-per-s": "20"})
    seen = 0
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            seen += 1
            if seen == 2:
                break
    stream.close()
    with claude(sim).messages.stream(
        model="claude-haiku-4-5",
        max_tokens=300,
        messages=[{"role": "user", "content": "story"}],
        extra_headers={"x-sim-tokens-per-s": "20"},
    ) as s:
        next(iter(s.text_stream))
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and len(stats(sim)["cancelled"]) < 2:
        time.sleep(0.05)
    s = stats(sim)
    assert s["cancelled"] == {MODEL: 1, "claude-haiku-4-5": 1}
    assert s["completed"] == {}
    assert s["requests"] == {MODEL: 1, "claude-haiku-4-5": 1}

    # A stream read to the end is completed, not cancelled.
    list(ask(sim, "short", stream=True, extra_headers={"x-sim-tokens-per-s": "1000"}))
    assert stats(sim)["completed"] == {MODEL: 1}
