"""OpenAI Chat Completions on the client side: request -> canonical, canonical -> response
and SSE chunks."""

import orjson

from apps.core.errors import ApiError
from apps.providers.canonical import ChatRequest, ChatResult, Delta, Usage

from .parsing import field, json_object, number_in, positive_int, stop_list

ROLES = {"system", "developer", "user", "assistant", "tool", "function"}
# Accepted and forwarded to OpenAI-compatible upstreams as they are.
PASSTHROUGH = ("seed", "presence_penalty", "frequency_penalty", "logit_bias", "parallel_tool_calls",
               "reasoning_effort", "service_tier", "metadata", "store", "modalities", "prediction")


def _messages(data: dict) -> list[dict]:
    messages = field(data, "messages", list, required=True)
    if not messages:
        raise ApiError(400, "'messages' must contain at least one message.", code="invalid_value", param="messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise ApiError(400, f"Invalid 'messages[{i}]': each message needs a role among {sorted(ROLES)}.",
                           code="invalid_value", param=f"messages[{i}].role")
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise ApiError(400, f"Invalid 'messages[{i}].content': expected a string or a list of parts.",
                           code="invalid_type", param=f"messages[{i}].content")
        if message["role"] == "tool" and not message.get("tool_call_id"):
            raise ApiError(400, f"'messages[{i}]' with role 'tool' needs 'tool_call_id'.",
                           code="missing_required_parameter", param=f"messages[{i}].tool_call_id")
    return messages


def _tools(data: dict) -> list[dict] | None:
    tools = field(data, "tools", list)
    if tools is None:
        return None
    for i, tool in enumerate(tools):
        if not (isinstance(tool, dict) and tool.get("type") == "function" and isinstance(tool.get("function"), dict)
                and isinstance(tool["function"].get("name"), str)):
            raise ApiError(400, f"Invalid 'tools[{i}]': expected {{'type': 'function', 'function': {{'name': ...}}}}.",
                           code="invalid_value", param=f"tools[{i}]")
    return tools or None


def parse_chat(body: bytes) -> ChatRequest:
    data = json_object(body)
    model = field(data, "model", str, required=True)
    n = positive_int(data, "n") or 1
    stream = field(data, "stream", bool, default=False)
    if n != 1:
        raise ApiError(400, "Only n=1 is supported.", code="unsupported_value", param="n")
    stream_options = field(data, "stream_options", dict, default={})
    response_format = field(data, "response_format", dict)
    if response_format is not None and response_format.get("type") not in ("text", "json_object", "json_schema"):
        raise ApiError(400, "'response_format.type' must be text, json_object or json_schema.",
                       code="invalid_value", param="response_format.type")
    return ChatRequest(
        model=model,
        messages=_messages(data),
        stream=stream,
        max_tokens=positive_int(data, "max_completion_tokens") or positive_int(data, "max_tokens"),
        temperature=number_in(data, "temperature", 0, 2),
        top_p=number_in(data, "top_p", 0, 1),
        stop=stop_list(data.get("stop")),
        n=n,
        tools=_tools(data),
        tool_choice=data.get("tool_choice"),
        response_format=response_format,
        logprobs=field(data, "logprobs", bool, default=False),
        top_logprobs=field(data, "top_logprobs", int),
        user=field(data, "user", str),
        include_usage=bool(stream_options.get("include_usage")),
        extra={k: data[k] for k in PASSTHROUGH if k in data},
    )


def usage_dict(usage: Usage) -> dict:
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens}


def completion(result: ChatResult, response_id: str, created: int) -> bytes:
    message = {"role": "assistant", "content": result.content, "refusal": None}
    if result.tool_calls:
        message["tool_calls"] = result.tool_calls
    return orjson.dumps({
        "id": response_id,
        "object": "chat.completion",
        "created": created,
        "model": result.model,
        "choices": [{"index": 0, "message": message, "logprobs": result.logprobs, "finish_reason": result.finish_reason}],
        "usage": usage_dict(result.usage),
        "system_fingerprint": None,
    })


class ChunkWriter:
    """Canonical stream events -> OpenAI `chat.completion.chunk` SSE lines."""

    def __init__(self, response_id: str, created: int, model: str, include_usage: bool):
        self.head = {"id": response_id, "object": "chat.completion.chunk", "created": created, "model": model,
                     "system_fingerprint": None}
        self.include_usage = include_usage

    def _line(self, choices: list, usage=None) -> bytes:
        chunk = {**self.head, "choices": choices}
        if self.include_usage:
            chunk["usage"] = usage
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def start(self) -> bytes:
        return self._line([{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                            "finish_reason": None}])

    def delta(self, event: Delta) -> bytes:
        delta = {}
        if event.content is not None:
            delta["content"] = event.content
        if event.tool_calls:
            delta["tool_calls"] = event.tool_calls
        return self._line([{"index": 0, "delta": delta, "logprobs": event.logprobs, "finish_reason": None}])

    def finish(self, reason: str) -> bytes:
        return self._line([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": reason}])

    def final(self, usage: Usage) -> bytes:
        tail = self._line([], usage_dict(usage)) if self.include_usage else b""
        return tail + b"data: [DONE]\n\n"


def stream_error(error: ApiError) -> bytes:
    # The OpenAI SDKs raise on a chunk carrying "error"; there is no [DONE] after it.
    return b"data: " + orjson.dumps(error.openai_body()) + b"\n\n"
