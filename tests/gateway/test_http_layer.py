"""The socket's edge: the Host header is checked on /v1/ as on every other page, and a
malformed gateway path gets the gateway's JSON error rather than an HTML page."""

import httpx

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
