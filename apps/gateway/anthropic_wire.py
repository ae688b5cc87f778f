"""Anthropic Messages on the client side: request -> canonical, canonical -> response and
the SSE event sequence (message_start, content_block_*, message_delta, message_stop)."""

import orjson

from apps.core.errors import ApiError
from apps.providers.canonical import ChatRequest, ChatResult, Delta, Usage

from .parsing import field, json_object, number_in, positive_int, stop_list

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}


def _text_of(content) -> str:
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content or () if isinstance(b, dict) and b.get("type") == "text")


def _to_canonical(messages: list) -> list[dict]:
    out = []
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant"):
            raise ApiError(400, f"messages.{i}.role: must be 'user' or 'assistant'.", param=f"messages.{i}.role")
        content = message.get("content")
        if isinstance(content, str):
            out.append({"role": role, "content": content})
            continue
        if not isinstance(content, list):
            raise ApiError(400, f"messages.{i}.content: expected a string or a list of content blocks.",
                           param=f"messages.{i}.content")
        parts, calls = [], []
        for block in content:
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "text":
                parts.append({"type": "text", "text": block.get("text", "")})
            elif kind == "image":
                source = block.get("source") or {}
                url = (f"data:{source.get('media_type')};base64,{source.get('data')}"
                       if source.get("type") == "base64" else source.get("url", ""))
                parts.append({"type": "image_url", "image_url": {"url": url}})
            elif kind == "tool_use":
                calls.append({"id": block.get("id", ""), "type": "function",
                              "function": {"name": block.get("name", ""),
                                           "arguments": orjson.dumps(block.get("input", {})).decode()}})
            elif kind == "tool_result":
                out.append({"role": "tool", "tool_call_id": block.get("tool_use_id", ""),
                            "content": _text_of(block.get("content"))})
            else:
                raise ApiError(400, f"messages.{i}.content: unsupported block type {kind!r}.",
                               param=f"messages.{i}.content")
        if parts or calls:
            message_out = {"role": role, "content": parts or None}
            if calls:
                message_out["tool_calls"] = calls
            out.append(message_out)
    return out


def _tool_choice(choice):
    if not isinstance(choice, dict):
        return None
    return {"auto": "auto", "any": "required", "none": "none"}.get(choice.get("type")) or (
        {"type": "function", "function": {"name": choice.get("name", "")}} if choice.get("type") == "tool" else None)


def parse_messages(body: bytes) -> ChatRequest:
    data = json_object(body)
    model = field(data, "model", str, required=True)
    max_tokens = positive_int(data, "max_tokens")
    if max_tokens is None:
        raise ApiError(400, "max_tokens: Field required", param="max_tokens")
    messages = field(data, "messages", list, required=True)
    if not messages:
        raise ApiError(400, "messages: at least one message is required", param="messages")
    system = data.get("system")
    canonical = _to_canonical(messages)
    if system:
        canonical.insert(0, {"role": "system", "content": _text_of(system)})
    tools = field(data, "tools", list)
    metadata = field(data, "metadata", dict, default={})
    return ChatRequest(
        model=model,
        messages=canonical,
        stream=field(data, "stream", bool, default=False),
        max_tokens=max_tokens,
        temperature=number_in(data, "temperature", 0, 1),
        top_p=number_in(data, "top_p", 0, 1),
        stop=stop_list(data.get("stop_sequences"), "stop_sequences"),
        tools=[{"type": "function", "function": {"name": t.get("name", ""), "description": t.get("description", ""),
                                                 "parameters": t.get("input_schema") or {}}}
               for t in tools] if tools else None,
        tool_choice=_tool_choice(data.get("tool_choice")),
        user=metadata.get("user_id"),
    )


def _content_blocks(result: ChatResult) -> list[dict]:
    blocks = [{"type": "text", "text": result.content}] if result.content else []
    for call in result.tool_calls or ():
        try:
            arguments = orjson.loads(call["function"].get("arguments") or "{}")
        except orjson.JSONDecodeError:
            arguments = {}
        blocks.append({"type": "tool_use", "id": call["id"], "name": call["function"]["name"], "input": arguments})
    return blocks


def message(result: ChatResult, message_id: str, created: int) -> bytes:
    return orjson.dumps({
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": result.model,
        "content": _content_blocks(result),
        "stop_reason": STOP_REASONS.get(result.finish_reason, "end_turn"),
        "stop_sequence": None,
        "usage": {"input_tokens": result.usage.prompt_tokens, "output_tokens": result.usage.completion_tokens},
    })


def _event(name: str, payload: dict) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


class EventWriter:
    """Canonical stream events -> Anthropic's SSE events, opening and closing content blocks."""

    def __init__(self, message_id: str, created: int, model: str, include_usage: bool = True):
        self.message_id, self.model = message_id, model
        self.block = -1          # index of the open content block, -1 when none
        self.block_kind = None   # "text" | "tool_use"
        self.stop_reason = "end_turn"

    def start(self) -> bytes:
        return _event("message_start", {"type": "message_start", "message": {
            "id": self.message_id, "type": "message", "role": "assistant", "model": self.model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 0, "output_tokens": 0}}})

    def _close_block(self) -> bytes:
        if self.block_kind is None:
            return b""
        self.block_kind = None
        return _event("content_block_stop", {"type": "content_block_stop", "index": self.block})

    def _open_block(self, kind: str, block: dict) -> bytes:
        out = self._close_block()
        self.block += 1
        self.block_kind = kind
        return out + _event("content_block_start", {"type": "content_block_start", "index": self.block,
                                                    "content_block": block})

    def delta(self, event: Delta) -> bytes:
        out = b""
        if event.content:
            if self.block_kind != "text":
                out += self._open_block("text", {"type": "text", "text": ""})
            out += _event("content_block_delta", {"type": "content_block_delta", "index": self.block,
                                                  "delta": {"type": "text_delta", "text": event.content}})
        for call in event.tool_calls or ():
            fn = call.get("function") or {}
            if call.get("id"):
                out += self._open_block("tool_use", {"type": "tool_use", "id": call["id"],
                                                     "name": fn.get("name", ""), "input": {}})
            if fn.get("arguments"):
                out += _event("content_block_delta", {"type": "content_block_delta", "index": self.block,
                                                      "delta": {"type": "input_json_delta",
                                                                "partial_json": fn["arguments"]}})
        return out

    def finish(self, reason: str) -> bytes:
        self.stop_reason = STOP_REASONS.get(reason, "end_turn")
        return self._close_block()

    def final(self, usage: Usage) -> bytes:
        return _event("message_delta", {
            "type": "message_delta", "delta": {"stop_reason": self.stop_reason, "stop_sequence": None},
            "usage": {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens},
        }) + _event("message_stop", {"type": "message_stop"})


def stream_error(error: ApiError) -> bytes:
    return _event("error", error.anthropic_body())
