"""Anthropic Messages on the client side: request -> canonical, canonical -> response and
the SSE event sequence (message_start, content_block_*, message_delta, message_stop)."""

import orjson

from apps.core.errors import ApiError
from apps.core.llm import ChatRequest, ChatResult, Delta, Finish, Usage

from .parsing import field, int_at_least, json_object, model_name, number_in, stop_list

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}


def _stop_reason(finish_reason: str, stop_sequence: str | None) -> str:
    # Only Anthropic's upstreams say which sequence matched; a "stop" from the others stays end_turn.
    return "stop_sequence" if stop_sequence is not None else STOP_REASONS.get(finish_reason, "end_turn")


def _invalid(param: str, problem: str) -> ApiError:
    return ApiError(400, f"{param}: {problem}", param=param)


TYPE_NAMES = {str: "string", dict: "dictionary", bool: "boolean"}


def _typed(obj: dict, name: str, kind: type, where: str, *, required: bool = True):
    value = obj.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, kind):
        problem = "Field required" if value is None else f"Input should be a valid {TYPE_NAMES[kind]}"
        raise _invalid(f"{where}.{name}", problem)
    return value


def _block_type(block, where: str):
    if not isinstance(block, dict):
        raise _invalid(where, "Input should be a valid dictionary")
    return block.get("type")


def _image_url(block: dict, where: str) -> str:
    source = _typed(block, "source", dict, where)
    where = f"{where}.source"
    kind = source.get("type")
    if kind == "base64":
        return f"data:{_typed(source, 'media_type', str, where)};base64,{_typed(source, 'data', str, where)}"
    if kind == "url":
        return _typed(source, "url", str, where)
    raise _invalid(f"{where}.type", "Input should be 'base64' or 'url'")


def _text_of(content, where: str, images: list | None = None) -> str:
    """The text of a string or a list of text blocks; where `images` is given (a tool's
    result), its image blocks are added to it as image parts, else refused."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _invalid(where, "Input should be a valid string or a list of content blocks")
    texts = []
    for j, block in enumerate(content):
        at = f"{where}.{j}"
        kind = _block_type(block, at)
        if kind == "text":
            texts.append(_typed(block, "text", str, at))
        elif kind == "image" and images is not None:
            images.append({"type": "image_url", "image_url": {"url": _image_url(block, at)}})
        else:
            raise _invalid(at, f"unsupported block type {kind!r}.")
    return "".join(texts)


def _to_canonical(messages: list) -> list[dict]:
    out = []
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if not isinstance(role, str) or role not in ("user", "assistant"):
            raise ApiError(400, f"messages.{i}.role: must be 'user' or 'assistant'.", param=f"messages.{i}.role")
        content = message.get("content")
        if isinstance(content, str):
            out.append({"role": role, "content": content})
            continue
        if not isinstance(content, list):
            raise ApiError(400, f"messages.{i}.content: expected a string or a list of content blocks.",
                           param=f"messages.{i}.content")
        if not content:
            raise _invalid(f"messages.{i}.content", "at least one content block is required.")
        parts, calls = [], []
        for j, block in enumerate(content):
            at = f"messages.{i}.content.{j}"
            kind = _block_type(block, at)
            if kind == "text":
                parts.append({"type": "text", "text": _typed(block, "text", str, at)})
            elif kind == "image":
                parts.append({"type": "image_url", "image_url": {"url": _image_url(block, at)}})
            elif kind == "tool_use":
                calls.append({"id": _typed(block, "id", str, at), "type": "function",
                              "function": {"name": _typed(block, "name", str, at),
                                           "arguments": orjson.dumps(_typed(block, "input", dict, at)).decode()}})
            elif kind == "tool_result":
                # A tool message holds text only (OpenAI's): the result's images follow the
                # turn's tool messages in a user message, with the turn's own text and images.
                # They were dropped: the model answered without them, and the cache took two
                # results differing only in their image for one.
                result = block.get("content")
                text = "" if result is None else _text_of(result, f"{at}.content", images=parts)
                # Every upstream reads a failed tool's result as one: a tool message has no flag for it.
                if _typed(block, "is_error", bool, at, required=False):
                    text = f"Error: {text}" if text else "Error"
                out.append({"role": "tool", "tool_call_id": _typed(block, "tool_use_id", str, at), "content": text})
            else:
                raise _invalid(at, f"unsupported block type {kind!r}.")
        if parts or calls:
            message_out = {"role": role, "content": parts or None}
            if calls:
                message_out["tool_calls"] = calls
            out.append(message_out)
    return out


def _tools(data: dict) -> list[dict] | None:
    tools = field(data, "tools", list)
    converted = []
    for i, tool in enumerate(tools or ()):
        at = f"tools.{i}"
        if not isinstance(tool, dict):
            raise _invalid(at, "Input should be a valid dictionary")
        if tool.get("type") not in (None, "custom"):   # Anthropic's own tools (web search, bash...) run at Anthropic
            raise _invalid(f"{at}.type", f"server tool {tool.get('type')!r} is not supported; only tools with an "
                           "input_schema, which your client runs.")
        converted.append({"type": "function", "function": {
            "name": _typed(tool, "name", str, at),
            "description": _typed(tool, "description", str, at, required=False) or "",
            "parameters": _typed(tool, "input_schema", dict, at, required=False) or {}}})
    return converted or None


TOOL_CHOICES = {"auto": "auto", "any": "required", "none": "none"}


def _parallel(data: dict) -> dict:
    """Anthropic's disable_parallel_tool_use as the canonical request's parallel_tool_calls
    (forwarded to OpenAI-compatible upstreams, and back to Anthropic's by its adapter)."""
    choice = field(data, "tool_choice", dict)
    if choice and _typed(choice, "disable_parallel_tool_use", bool, "tool_choice", required=False) \
            and data.get("tools"):   # OpenAI refuses the setting without tools
        return {"parallel_tool_calls": False}
    return {}


def _tool_choice(data: dict):
    choice = field(data, "tool_choice", dict)
    if choice is None:
        return None
    kind = choice.get("type")
    if kind == "tool":
        return {"type": "function", "function": {"name": _typed(choice, "name", str, "tool_choice")}}
    if not isinstance(kind, str) or kind not in TOOL_CHOICES:
        raise _invalid("tool_choice.type", "Input should be 'auto', 'any', 'tool' or 'none'")
    return TOOL_CHOICES[kind]


def parse_messages(body: bytes, *, counting: bool = False) -> ChatRequest:
    """The canonical request of a Messages body; `counting` (count_tokens): max_tokens is
    not required."""
    data = json_object(body)
    model = model_name(data)
    max_tokens = int_at_least(data, "max_tokens")
    if max_tokens is None and not counting:
        raise ApiError(400, "max_tokens: Field required", param="max_tokens")
    messages = field(data, "messages", list, required=True)
    if not messages:
        raise ApiError(400, "messages: at least one message is required", param="messages")
    system = data.get("system")
    canonical = _to_canonical(messages)
    if system is not None:
        system = _text_of(system, "system")
    if system:
        canonical.insert(0, {"role": "system", "content": system})
    metadata = field(data, "metadata", dict, default={})
    return ChatRequest(
        model=model,
        messages=canonical,
        stream=field(data, "stream", bool, default=False),
        max_tokens=max_tokens,
        temperature=number_in(data, "temperature", 0, 1),
        top_p=number_in(data, "top_p", 0, 1),
        top_k=int_at_least(data, "top_k", 0),
        stop=stop_list(data.get("stop_sequences"), "stop_sequences", None),
        tools=_tools(data),
        tool_choice=_tool_choice(data),
        user=_typed(metadata, "user_id", str, "metadata", required=False),
        extra=_parallel(data),
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
        "stop_reason": _stop_reason(result.finish_reason, result.stop_sequence),
        "stop_sequence": result.stop_sequence,
        "usage": {"input_tokens": result.usage.prompt_tokens, "output_tokens": result.usage.completion_tokens},
    })


def _event(name: str, payload: dict) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


class EventWriter:
    """Canonical stream events -> Anthropic's SSE events, opening and closing content blocks."""

    def __init__(self, message_id: str, created: int, model: str, req: ChatRequest, known: Usage | None):
        self.message_id, self.model, self.req, self.known = message_id, model, req, known
        self.block = -1          # index of the open content block, -1 when none
        self.block_kind = None   # "text" | "tool_use"
        self.tool_call = -1      # index of the tool call the open tool_use block holds
        self.stop_reason, self.stop_sequence = "end_turn", None

    def start(self) -> bytes:
        # Anthropic counts the input here, and some clients read it only here: the count of an answer
        # replayed (a cache hit, a speculated answer), else our estimate; message_delta brings the provider's.
        input_tokens = self.known.prompt_tokens if self.known else self.req.estimated_prompt_tokens()
        return _event("message_start", {"type": "message_start", "message": {
            "id": self.message_id, "type": "message", "role": "assistant", "model": self.model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": input_tokens, "output_tokens": 0}}})

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
            # By index, not id: some OpenAI-compatible servers repeat the id on every fragment of a call.
            if self.block_kind != "tool_use" or call.get("index") != self.tool_call:
                self.tool_call = call.get("index")
                out += self._open_block("tool_use", {"type": "tool_use", "id": call.get("id", ""),
                                                     "name": fn.get("name", ""), "input": {}})
            if fn.get("arguments"):
                out += _event("content_block_delta", {"type": "content_block_delta", "index": self.block,
                                                      "delta": {"type": "input_json_delta",
                                                                "partial_json": fn["arguments"]}})
        return out

    def finish(self, event: Finish) -> bytes:
        self.stop_reason, self.stop_sequence = _stop_reason(event.finish_reason, event.stop_sequence), event.stop_sequence
        return self._close_block()

    def final(self, usage: Usage) -> bytes:
        return _event("message_delta", {
            "type": "message_delta", "delta": {"stop_reason": self.stop_reason, "stop_sequence": self.stop_sequence},
            "usage": {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens},
        }) + _event("message_stop", {"type": "message_stop"})


# Anthropic's error `type` by status.
ERROR_TYPES = {401: "authentication_error", 402: "billing_error", 403: "permission_error", 404: "not_found_error",
               413: "request_too_large", 429: "rate_limit_error", 503: "overloaded_error", 504: "timeout_error"}


def _type(error: ApiError) -> str:
    # As Anthropic documents its errors: invalid_request_error for a 400 and for any 4xx it does not list (405, 408, 431).
    return ERROR_TYPES.get(error.status) or ("invalid_request_error" if error.status < 500 else "api_error")


def _error(error: ApiError) -> dict:
    return {"type": "error", "error": {"type": _type(error), "message": error.message}}


def error_body(error: ApiError, request_id: str) -> bytes:
    # As Anthropic's, the body names the call too: the id of its request-id header.
    return orjson.dumps({**_error(error), "request_id": request_id})


def stream_error(error: ApiError) -> bytes:
    return _event("error", _error(error))


def _model(name: str) -> dict:
    return {"type": "model", "id": name, "display_name": name, "created_at": "2025-01-01T00:00:00Z"}


def token_count(tokens: int) -> bytes:
    return orjson.dumps({"input_tokens": tokens})


def model_list(ids: list[str]) -> bytes:
    return orjson.dumps({"data": [_model(i) for i in ids], "has_more": False, "first_id": ids[0], "last_id": ids[-1]})


def model_object(name: str) -> bytes:
    return orjson.dumps(_model(name))
