"""Anthropic Messages wire format (JSON and SSE) and errors.

Stream: ``event: <type>\\ndata: <json>\\n\\n`` for message_start (usage input_tokens and
output_tokens 1), content_block_start (text "" or tool_use with input {}), ping, one
content_block_delta per token (text_delta or input_json_delta), content_block_stop,
message_delta (stop_reason, stop_sequence, usage.output_tokens = final count), message_stop.
"""

from __future__ import annotations

import os

import orjson

from .answers import Completion, Conversation, Tool, count_tokens
from .errors import WireError

SSE_CONTENT_TYPE = b"text/event-stream; charset=utf-8"
_STOP = {"stop": "end_turn", "stop_sequence": "stop_sequence", "length": "max_tokens", "tool": "tool_use"}
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error(status: int, message: str, param: str | None = None, code: str | None = None) -> tuple[int, bytes, list]:
    kind = _TYPES.get(status) or ("invalid_request_error" if status < 500 else "api_error")
    headers = [(b"retry-after", b"1")] if status == 429 else []
    body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_" + os.urandom(12).hex()}
    return status, orjson.dumps(body), headers


def model_not_found(model: str) -> tuple[int, bytes, list]:
    return error(404, f"model: {model}")


def fault_error(status: int) -> tuple[int, bytes, list]:
    messages = {
        429: "Number of requests has exceeded your rate limit (simulated fault).",
        500: "Internal server error (simulated fault).",
        503: "Overloaded (simulated fault).",
        529: "Overloaded (simulated fault).",
    }
    return error(status, messages.get(status, f"Simulated upstream fault: HTTP {status}."))


def _blocks_text(content, texts: list[str]) -> tuple[str, str | None]:
    """Appends every counted text of `content` to `texts`; returns (its plain text, the
    text of its last tool_result or None)."""
    if isinstance(content, str):
        texts.append(content)
        return content, None
    plain: list[str] = []
    result = None
    if isinstance(content, list):
        for block in content:
            if not isinstance(block, dict):
                continue
            kind = block.get("type")
            if kind == "text":
                t = block.get("text") or ""
                texts.append(t)
                plain.append(t)
            elif kind == "tool_use":
                texts.append(str(block.get("name") or ""))
                texts.append(orjson.dumps(block.get("input", {})).decode())
            elif kind == "tool_result":
                inner = block.get("content")
                if isinstance(inner, list):
                    inner = "\n".join(b.get("text", "") for b in inner if isinstance(b, dict) and b.get("type") == "text")
                result = "" if inner is None else str(inner)
                texts.append(result)
    return "\n".join(plain), result


def parse(data: dict, model: str) -> tuple[Conversation, dict]:
    max_tokens = data.get("max_tokens")
    if max_tokens is None:
        raise WireError(400, "max_tokens: Field required")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise WireError(400, "max_tokens: Input should be a valid integer greater than or equal to 1")
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise WireError(400, "messages: Field required" if messages is None else "messages: at least one message is required")
    conv = Conversation(model=model, max_tokens=max_tokens)
    texts = conv.texts
    system = data.get("system")
    if system:
        _blocks_text(system, texts)
        conv.messages += 1
    last_user = ""
    result = None
    for msg in messages:
        if not isinstance(msg, dict) or msg.get("role") not in ("user", "assistant"):
            raise WireError(400, "messages: each message needs a role of 'user' or 'assistant'")
        plain, result = _blocks_text(msg.get("content"), texts)
        if msg["role"] == "user" and (plain or result is None):
            last_user = plain
    conv.messages += len(messages)
    conv.last_user = last_user
    if messages[-1].get("role") == "user" and result is not None:
        conv.tool_result = result

    tools = data.get("tools")
    if isinstance(tools, list) and tools:
        conv.tools_json_tokens = count_tokens(orjson.dumps(tools).decode())
        for t in tools:
            if isinstance(t, dict) and isinstance(t.get("name"), str) and "input_schema" in t:
                conv.tools.append(Tool(t["name"], t.get("input_schema") or {}))
    choice = data.get("tool_choice")
    if isinstance(choice, dict):
        kind = choice.get("type")
        if kind == "none":
            conv.tool_mode = "none"
        elif kind == "any":
            conv.tool_mode = "forced"
        elif kind == "tool":
            conv.tool_mode = "forced"
            conv.forced_tool = choice.get("name")
    stops = data.get("stop_sequences")
    if isinstance(stops, list):
        conv.stops = tuple(s for s in stops if isinstance(s, str))
    conv.stream = bool(data.get("stream"))
    return conv, {}


def count_tokens_response(data: dict, model: str) -> bytes:
    conv, _ = parse({**data, "max_tokens": 1}, model)
    return orjson.dumps({"input_tokens": conv.prompt_tokens()})


def new_id() -> str:
    return "msg_sim" + os.urandom(12).hex()


def _block(c: Completion) -> dict:
    if c.tool is not None:
        return {"type": "tool_use", "id": "toolu_" + c.tool.id_hex, "name": c.tool.name, "input": c.tool.args}
    return {"type": "text", "text": c.text}


def _usage(input_tokens: int, output_tokens: int) -> dict:
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "service_tier": "standard",
    }


def response(conv: Conversation, completions: list[Completion], prompt_tokens: int, extra: dict) -> bytes:
    c = completions[0]
    body = {
        "id": new_id(),
        "type": "message",
        "role": "assistant",
        "model": conv.model,
        "content": [_block(c)],
        "stop_reason": _STOP[c.finish],
        "stop_sequence": c.stop_sequence,
        "usage": _usage(prompt_tokens, c.tokens),
    }
    return orjson.dumps(body)


def _event(name: bytes, payload: dict) -> bytes:
    return b"event: " + name + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def stream_events(conv: Conversation, completions: list[Completion], prompt_tokens: int, extra: dict) -> list[tuple[bytes, int]]:
    c = completions[0]
    message = {
        "id": new_id(),
        "type": "message",
        "role": "assistant",
        "model": conv.model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": _usage(prompt_tokens, 1),
    }
    events = [(_event(b"message_start", {"type": "message_start", "message": message}), 0)]
    if c.tool is not None:
        block = {"type": "tool_use", "id": "toolu_" + c.tool.id_hex, "name": c.tool.name, "input": {}}
        events.append(
            (
                _event(b"content_block_start", {"type": "content_block_start", "index": 0, "content_block": block}),
                count_tokens(c.tool.name),
            )
        )
        events.append((b'event: ping\ndata: {"type":"ping"}\n\n', 0))
        for piece in c.pieces:
            delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": piece}}
            events.append((_event(b"content_block_delta", delta), 1))
    else:
        events.append(
            (
                _event(
                    b"content_block_start",
                    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                ),
                0,
            )
        )
        events.append((b'event: ping\ndata: {"type":"ping"}\n\n', 0))
        for piece in c.pieces:
            delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}
            events.append((_event(b"content_block_delta", delta), 1))
    events.append((_event(b"content_block_stop", {"type": "content_block_stop", "index": 0}), 0))
    events.append(
        (
            _event(
                b"message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": _STOP[c.finish], "stop_sequence": c.stop_sequence},
                    "usage": {"output_tokens": c.tokens},
                },
            ),
            0,
        )
    )
    events.append((b'event: message_stop\ndata: {"type":"message_stop"}\n\n', 0))
    return events
