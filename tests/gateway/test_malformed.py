"""Malformed bodies a fuzzing audit once turned into 500s: each is a 400 in the client's
error shape, with a request id and a non-billable ledger row."""

import json

import httpx
import pytest

USER = [{"role": "user", "content": "hi"}]


def nested(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


def openai_body(**fields) -> str:
    return json.dumps({"model": "gpt-4o-mini", "messages": USER, **fields})


def anthropic_body(**fields) -> str:
    return json.dumps({"model": "claude-haiku-4-5", "max_tokens": 16, "messages": USER, **fields})


def assert_rejected(live, response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    request_id = response.headers["x-request-id"]
    [row] = live.records()
    assert (row.request_id, row.status_code, row.billable) == (request_id, 400, False)


OPENAI_CASES = {
    "unhashable role": (openai_body(messages=[{"role": {}, "content": "x"}]), "messages[0].role"),
    "text part not a string": (
        openai_body(messages=[{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": 5}]}]),
        "messages[0].content[1].text"),
    "image_url without url, to Claude": (
        openai_body(model="claude-haiku-4-5", messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]),
        "messages[0].content[0].image_url.url"),
    "metadata nested 253 deep": (openai_body()[:-1] + f', "metadata": {nested(253)}}}', None),
    "seed nested 253 deep": (openai_body()[:-1] + f', "seed": {nested(253)}}}', None),
    "NUL in model": (openai_body(model="gpt-4o-mini\u0000"), "model"),
    "model over 100 characters": (openai_body(model="gpt-" + "x" * 97), "model"),
}


@pytest.mark.parametrize("body, param", OPENAI_CASES.values(), ids=OPENAI_CASES.keys())
def test_openai_malformed_body_is_400(live, body, param):
    response = httpx.post(f"{live.url}/v1/chat/completions", content=body, headers={
        "authorization": f"Bearer {live.raw_key}", "content-type": "application/json"})
    assert_rejected(live, response)
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["param"]) == ("invalid_request_error", param)
    assert isinstance(error["message"], str) and isinstance(error["code"], str)


ANTHROPIC_CASES = {
    "tools item not an object": (anthropic_body(tools=[1]), "tools.0:"),
    "system not text": (anthropic_body(system=5), "system:"),
    "empty content list": (anthropic_body(messages=[{"role": "user", "content": []}]), "messages.0.content:"),
    "image source not an object": (
        anthropic_body(messages=[{"role": "user", "content": [{"type": "image", "source": "x"}]}]),
        "messages.0.content.0.source:"),
    "tool_result content not text": (
        anthropic_body(messages=[{"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": 5}]}]),
        "messages.0.content.0.content:"),
    "tool_use input nested 300 deep": (
        anthropic_body(messages=[{"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"x": "DEEP"}}]}, *USER]).replace(
            '"DEEP"', nested(300)),
        "The request body is nested more than"),
    # Two that were accepted and silently lost: a server tool became a client function, and
    # the flag was never read.
    "server tool": (anthropic_body(tools=[{"type": "web_search_20250305", "name": "web_search"}]),
                    "tools.0.type: server tool 'web_search_20250305' is not supported"),
    "disable_parallel_tool_use not a boolean": (
        anthropic_body(tool_choice={"type": "auto", "disable_parallel_tool_use": "yes"}),
        "tool_choice.disable_parallel_tool_use:"),
    "NUL in model": (anthropic_body(model="claude-haiku-4-5\u0000"), "'model' must not contain NUL"),
    "top_k not an integer": (anthropic_body(top_k="x"), "Invalid type for 'top_k'"),   # was accepted and dropped
    "top_k negative": (anthropic_body(top_k=-1), "'top_k' must be at least 0"),
    "model over 100 characters": (anthropic_body(model="claude-" + "x" * 94), "'model' must be at most 100"),
}


@pytest.mark.parametrize("body, message", ANTHROPIC_CASES.values(), ids=ANTHROPIC_CASES.keys())
def test_anthropic_malformed_body_is_400(live, body, message):
    response = httpx.post(f"{live.url}/v1/messages", content=body, headers={
        "x-api-key": live.raw_key, "anthropic-version": "2023-06-01", "content-type": "application/json"})
    assert_rejected(live, response)
    payload = response.json()
    assert set(payload) == {"type", "error", "request_id"} and payload["type"] == "error"
    assert payload["request_id"] == response.headers["request-id"]
    assert set(payload["error"]) == {"type", "message"}
    assert payload["error"]["type"] == "invalid_request_error"
    assert payload["error"]["message"].startswith(message)
