"""The socket's edge: the Host header is checked on /v1/ as on every other page, a
malformed gateway path gets the gateway's JSON error rather than an HTML page, and a
request refused before any view reads it is answered as every other gateway answer is:
in its client's wire format, naming the call."""

import anthropic
import httpx
import openai
import pytest

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}


def test_a_host_not_in_allowed_hosts_is_400_in_json(live):
    response = httpx.post(f"{live.url}/v1/chat/completions", json=BODY,
                          headers={"authorization": f"Bearer {live.raw_key}", "host": "evil.example"})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"]["code"] == "invalid_host"
    assert live.records(expected=1, timeout=0.5) == []  # nothing was called, nothing billed


def test_a_host_not_in_allowed_hosts_is_400_for_anthropic_clients_too(live):
    response = httpx.post(f"{live.url}/v1/messages", json={**BODY, "max_tokens": 10},
                          headers={"x-api-key": live.raw_key, "host": "evil.example"})
    assert response.status_code == 400
    assert response.json()["type"] == "error" and response.json()["error"]["type"] == "invalid_request_error"


def test_the_allowed_host_is_served(live):
    response = httpx.post(f"{live.url}/v1/chat/completions", json=BODY,
                          headers={"authorization": f"Bearer {live.raw_key}"})
    assert response.status_code == 200


def test_a_doubled_slash_before_v1_is_a_json_404(live):
    response = httpx.post(f"{live.url}//v1/chat/completions", json=BODY,
                          headers={"authorization": f"Bearer {live.raw_key}"})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"]["code"] == "unknown_url"


TOO_LARGE = {"x-big": "a" * 40_000}   # over AKA_MAX_HEADER_BYTES (32 KB)


def test_oversized_headers_are_431_in_anthropics_shape_with_the_request_id(live):
    client = anthropic.Anthropic(base_url=live.url, api_key=live.raw_key, max_retries=0, default_headers=TOO_LARGE)
    with pytest.raises(anthropic.RequestHeaderFieldsTooLargeError) as err:
        client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    request_id = err.value.request_id
    assert request_id.startswith("req_") and err.value.response.headers["x-request-id"] == request_id
    assert err.value.response.headers["connection"] == "close"
    assert err.value.body == {"type": "error", "request_id": request_id, "error": {
        "type": "invalid_request_error", "message": "Too many request headers, or too large."}}
    assert live.records(expected=1, timeout=0.5) == []  # refused before the key was read: no row


def test_oversized_headers_are_431_in_openais_shape_with_the_request_id(live):
    client = openai.OpenAI(base_url=f"{live.url}/v1", api_key=live.raw_key, max_retries=0, default_headers=TOO_LARGE)
    with pytest.raises(openai.APIStatusError) as err:
        client.chat.completions.create(**BODY)
    assert err.value.status_code == 431
    assert err.value.request_id.startswith("req_")
    assert err.value.response.headers["request-id"] == err.value.request_id
    assert err.value.body == {"message": "Too many request headers, or too large.", "type": "invalid_request_error",
                              "param": None, "code": "headers_too_large"}
