"""OpenAI Chat Completions on the client side: request -> canonical, canonical -> response
and SSE chunks."""

import re

import orjson

from apps.core.errors import ApiError
from apps.core.llm import ChatRequest, ChatResult, Delta, Finish, Usage

from .parsing import check_depth, field, int_at_least, json_object, model_name, number_in, stop_list

ROLES = {"system", "developer", "user", "assistant", "tool", "function"}
# Accepted and forwarded to OpenAI-compatible upstreams as they are.
PASSTHROUGH = ("seed", "presence_penalty", "frequency_penalty", "logit_bias", "parallel_tool_calls",
               "reasoning_effort", "service_tier", "metadata", "store", "modalities", "prediction")


def _string(obj: dict, name: str, where: str) -> str:
    return field(obj, name, str, required=True, param=f"{where}.{name}")


def _object(obj: dict, name: str, where: str) -> dict:
    return field(obj, name, dict, required=True, param=f"{where}.{name}")


# The field each part type must carry, read by the adapters without further checks. A bare
# image URL string is tolerated: the Claude adapter reads either form.
PARTS = {"text": str, "refusal": str, "image_url": (dict, str), "input_audio": dict, "file": dict}


def _content(content, where: str) -> None:
    if content is None or isinstance(content, str):
        return
    if not isinstance(content, list):
        raise ApiError(400, f"Invalid '{where}': expected a string or a list of parts.", code="invalid_type", param=where)
    if not content:
        raise ApiError(400, f"Invalid '{where}': expected at least one part.", code="invalid_value", param=where)
    for j, part in enumerate(content):
        at = f"{where}[{j}]"
        if not isinstance(part, dict):
            raise ApiError(400, f"Invalid '{at}': expected an object.", code="invalid_type", param=at)
        kind = part.get("type")
        if not isinstance(kind, str) or kind not in PARTS:
            raise ApiError(400, f"Invalid '{at}.type': expected one of {sorted(PARTS)}.", code="invalid_value",
                           param=f"{at}.type")
        value = field(part, kind, PARTS[kind], required=True, param=f"{at}.{kind}")
        if kind == "image_url" and isinstance(value, dict):
            _string(value, "url", f"{at}.image_url")


def _tool_calls(calls, where: str) -> None:
    if not isinstance(calls, list):
        raise ApiError(400, f"Invalid '{where}': expected a list.", code="invalid_type", param=where)
    for j, call in enumerate(calls):
        at = f"{where}[{j}]"
        if not isinstance(call, dict):
            raise ApiError(400, f"Invalid '{at}': expected an object.", code="invalid_type", param=at)
        _string(call, "id", at)
        function = _object(call, "function", at)
        _string(function, "name", f"{at}.function")
        arguments = _string(function, "arguments", f"{at}.function")
        try:
            parsed = orjson.loads(arguments)
        except orjson.JSONDecodeError:
            continue  # forwarded as is; the adapters that decode it fall back to {}
        # Decoded and re-encoded for Claude and Gemini: bound it like the body.
        check_depth(parsed, f"{at}.function.arguments")


def _messages(data: dict) -> list[dict]:
    messages = field(data, "messages", list, required=True)
    if not messages:
        raise ApiError(400, "'messages' must contain at least one message.", code="invalid_value", param="messages")
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if not isinstance(role, str) or role not in ROLES:
            raise ApiError(400, f"Invalid 'messages[{i}]': each message needs a role among {sorted(ROLES)}.",
                           code="invalid_value", param=f"messages[{i}].role")
        _content(message.get("content"), f"messages[{i}].content")
        if message.get("tool_calls") is not None:
            _tool_calls(message["tool_calls"], f"messages[{i}].tool_calls")
        if role == "tool" and not message.get("tool_call_id"):
            raise ApiError(400, f"'messages[{i}]' with role 'tool' needs 'tool_call_id'.",
                           code="missing_required_parameter", param=f"messages[{i}].tool_call_id")
        field(message, "tool_call_id", str, param=f"messages[{i}].tool_call_id")
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
        field(tool["function"], "description", str, param=f"tools[{i}].function.description")
        field(tool["function"], "parameters", dict, param=f"tools[{i}].function.parameters")
    return tools or None


def _tool_choice(data: dict):
    choice = data.get("tool_choice")
    if choice is None or choice in ("none", "auto", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        function = _object(choice, "function", "tool_choice")
        _string(function, "name", "tool_choice.function")
        return choice
    raise ApiError(400, "'tool_choice' must be 'none', 'auto', 'required' or "
                        "{'type': 'function', 'function': {'name': ...}}.", code="invalid_value", param="tool_choice")


def _response_format(data: dict) -> dict | None:
    response_format = field(data, "response_format", dict)
    if response_format is None:
        return None
    kind = response_format.get("type")
    if not isinstance(kind, str) or kind not in ("text", "json_object", "json_schema"):
        raise ApiError(400, "'response_format.type' must be text, json_object or json_schema.",
                       code="invalid_value", param="response_format.type")
    if kind == "json_schema":
        spec = _object(response_format, "json_schema", "response_format")
        field(spec, "schema", dict, param="response_format.json_schema.schema")
    return response_format


def parse_chat(body: bytes) -> ChatRequest:
    data = json_object(body)
    model = model_name(data)
    n = int_at_least(data, "n") or 1
    stream = field(data, "stream", bool, default=False)
    if n != 1:
        raise ApiError(400, "Only n=1 is supported.", code="unsupported_value", param="n")
    stream_options = field(data, "stream_options", dict, default={})
    if stream_options and not stream:
        raise ApiError(400, "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                       code="invalid_value", param="stream_options")
    return ChatRequest(
        model=model,
        messages=_messages(data),
        stream=stream,
        max_tokens=int_at_least(data, "max_completion_tokens") or int_at_least(data, "max_tokens"),
        temperature=number_in(data, "temperature", 0, 2),
        top_p=number_in(data, "top_p", 0, 1),
        stop=stop_list(data.get("stop"), "stop", 4),
        n=n,
        tools=_tools(data),
        tool_choice=_tool_choice(data),
        response_format=_response_format(data),
        logprobs=field(data, "logprobs", bool, default=False),
        top_logprobs=field(data, "top_logprobs", int),
        user=field(data, "user", str),
        include_usage=field(stream_options, "include_usage", bool, default=False, param="stream_options.include_usage"),
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

    def __init__(self, response_id: str, created: int, model: str, req: ChatRequest, known: Usage | None):
        self.head = {"id": response_id, "object": "chat.completion.chunk", "created": created, "model": model,
                     "system_fingerprint": None}
        self.include_usage = req.include_usage

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

    def finish(self, event: Finish) -> bytes:
        return self._line([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": event.finish_reason}])

    def final(self, usage: Usage) -> bytes:
        tail = self._line([], usage_dict(usage)) if self.include_usage else b""
        return tail + b"data: [DONE]\n\n"


# OpenAI's error `type`: invalid_request_error for any refused request (its 401, 403 and 404
# included: a bad key, a deactivated account, an unknown model), server_error for a failure;
# except these, OpenAI's own values for the same cases.
ERROR_TYPES = {402: "billing_not_active", 429: "rate_limit_error", 503: "service_unavailable_error"}


def _type(error: ApiError) -> str:
    if error.code == "insufficient_quota":   # as OpenAI's spent quota: a 429 that retrying does not cure
        return "insufficient_quota"
    return ERROR_TYPES.get(error.status) or ("server_error" if error.status >= 500 else "invalid_request_error")


def _error(error: ApiError) -> dict:
    return {"error": {"message": error.message, "type": _type(error), "param": error.param, "code": error.code}}


def error_body(error: ApiError, request_id: str) -> bytes:
    # OpenAI's body does not name the call: its clients read the x-request-id header.
    return orjson.dumps(_error(error))


def stream_error(error: ApiError) -> bytes:
    # The OpenAI SDKs raise on a chunk carrying "error"; there is no [DONE] after it.
    return b"data: " + orjson.dumps(_error(error)) + b"\n\n"


def _model(name: str) -> dict:
    return {"id": name, "object": "model", "created": 1735689600, "owned_by": "akarouter"}


def model_list(ids: list[str]) -> bytes:
    return orjson.dumps({"object": "list", "data": [_model(i) for i in ids]})


def model_object(name: str) -> bytes:
    return orjson.dumps(_model(name))


THUMBS = {"up": 1.0, "down": -1.0}
# A call's x-request-id (Call.request_id): "req_" and hex. Anything else, a NUL above all
# (PostgreSQL text cannot hold one: the lookup answered 500), names no call.
REQUEST_ID = re.compile(r"req_[A-Za-z0-9]{1,36}")
COMMENT_LIMIT = 2000


def parse_feedback(body: bytes) -> tuple[str, float, str]:
    """(request id, score from -1 to 1, comment) of a `POST /v1/feedback`: a `score`, or
    `thumbs` "up"/"down"."""
    data = json_object(body)
    request_id = field(data, "request_id", str, required=True)
    if not REQUEST_ID.fullmatch(request_id):
        raise ApiError(400, "'request_id' must be the x-request-id of one of your calls.", code="invalid_value",
                       param="request_id")
    score, thumbs = number_in(data, "score", -1, 1), field(data, "thumbs", str)
    if (score is None) == (thumbs is None) or (thumbs is not None and thumbs not in THUMBS):
        raise ApiError(400, "Give either 'score' (from -1 to 1) or 'thumbs' ('up' or 'down').", code="invalid_value",
                       param="score")
    comment = field(data, "comment", str, default="")
    if len(comment) > COMMENT_LIMIT:
        raise ApiError(400, f"'comment' must be at most {COMMENT_LIMIT} characters long.", code="invalid_value",
                       param="comment")
    return request_id, THUMBS[thumbs] if thumbs else score, comment.replace("\x00", "\ufffd")


def feedback(request_id: str, score: float, demoted: bool) -> bytes:
    return orjson.dumps({"object": "feedback", "request_id": request_id, "score": score,
                         "cache_entry_demoted": demoted})


def parse_embeddings(body: bytes) -> tuple[str, dict]:
    """(model, the body to forward) of an /embeddings call."""
    data = json_object(body)
    model = model_name(data)
    if field(data, "input", (str, list), required=True) in ("", []):
        raise ApiError(400, "'input' must not be empty.", code="invalid_value", param="input")
    return model, data


def embeddings(body: dict) -> bytes:
    """The upstream's embeddings answer (the adapter has put our model id in it)."""
    return orjson.dumps(body)
