"""OpenAI wire format: Chat Completions (JSON and SSE), Embeddings, Models, errors.

Streams: ``data: <chunk>\\n\\n`` lines. Per choice: a first chunk with delta
``{"role": "assistant", "content": ""}`` (for a tool call ``content: null`` and
``tool_calls[0]`` with index/id/type/function.name and empty arguments), one chunk per
token (``content`` or ``tool_calls[0].function.arguments`` fragment; with ``logprobs`` the
chunk carries that token's logprobs), a chunk with an empty delta and the finish reason;
with n > 1 the choices' chunks are interleaved. Then, with
``stream_options.include_usage``, a chunk with ``choices: []`` and the usage (and
``usage: null`` on every other chunk), then ``data: [DONE]``.
"""

from __future__ import annotations

import os
import time
from itertools import zip_longest

import orjson

from . import answers
from .answers import Completion, Conversation, Tool, count_tokens
from .embeddings import embed, to_base64
from .errors import WireError
from .profiles import CREATED, Profile

FINGERPRINT = "fp_akasim01"
SSE_CONTENT_TYPE = b"text/event-stream; charset=utf-8"
DONE = b"data: [DONE]\n\n"
_FINISH = {"stop": "stop", "stop_sequence": "stop", "length": "length", "tool": "tool_calls"}


def error(status: int, message: str, param: str | None = None, code: str | None = None) -> tuple[int, bytes, list]:
    headers = []
    if status == 429:
        kind, code = "requests", code or "rate_limit_exceeded"
        headers.append((b"retry-after", b"1"))
    elif status >= 500:
        kind = "server_error"
    else:
        kind = "invalid_request_error"
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return status, orjson.dumps(body), headers


def model_not_found(model: str) -> tuple[int, bytes, list]:
    return error(404, f"The model `{model}` does not exist or you do not have access to it.", None, "model_not_found")


def fault_error(status: int) -> tuple[int, bytes, list]:
    messages = {
        429: "Rate limit reached for requests (simulated fault). Please try again in 1s.",
        500: "The server had an error while processing your request (simulated fault).",
        503: "The server is overloaded or not ready yet (simulated fault).",
    }
    return error(status, messages.get(status, f"Simulated upstream fault: HTTP {status}."))


def _text(content) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for part in content:
            if isinstance(part, dict):
                t = part.get("text")
                if isinstance(t, str):
                    out.append(t)
                elif isinstance(part.get("refusal"), str):
                    out.append(part["refusal"])
            elif isinstance(part, str):
                out.append(part)
        return "\n".join(out)
    return str(content)


def parse(data: dict, model: str) -> tuple[Conversation, dict]:
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise WireError(400, "'messages' must be a non-empty array.", "messages", "invalid_value")
    conv = Conversation(model=model)
    texts = conv.texts
    last_user = ""
    for msg in messages:
        if not isinstance(msg, dict) or not isinstance(msg.get("role"), str):
            raise WireError(400, "Each message must be an object with a 'role'.", "messages", "invalid_value")
        t = _text(msg.get("content"))
        texts.append(t)
        if msg["role"] == "user":
            last_user = t
        for call in msg.get("tool_calls") or ():
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict):
                texts.append(str(fn.get("name") or ""))
                texts.append(str(fn.get("arguments") or ""))
        fc = msg.get("function_call")
        if isinstance(fc, dict):
            texts.append(str(fc.get("name") or ""))
            texts.append(str(fc.get("arguments") or ""))
    conv.messages = len(messages)
    conv.last_user = last_user
    if messages[-1]["role"] in ("tool", "function"):
        conv.tool_result = _text(messages[-1].get("content"))

    tools = data.get("tools")
    functions = data.get("functions")
    if isinstance(tools, list) and tools:
        conv.tools_json_tokens = count_tokens(orjson.dumps(tools).decode())
        for t in tools:
            fn = t.get("function") if isinstance(t, dict) else None
            if isinstance(fn, dict) and isinstance(fn.get("name"), str):
                conv.tools.append(Tool(fn["name"], fn.get("parameters") or {}))
        choice = data.get("tool_choice")
    elif isinstance(functions, list) and functions:
        conv.tools_json_tokens = count_tokens(orjson.dumps(functions).decode())
        for fn in functions:
            if isinstance(fn, dict) and isinstance(fn.get("name"), str):
                conv.tools.append(Tool(fn["name"], fn.get("parameters") or {}))
        choice = data.get("function_call")
        if isinstance(choice, dict):
            choice = {"type": "function", "function": choice}
    else:
        choice = None
    if choice == "none":
        conv.tool_mode = "none"
    elif choice == "required":
        conv.tool_mode = "forced"
    elif isinstance(choice, dict):
        fn = choice.get("function") or {}
        conv.tool_mode = "forced"
        conv.forced_tool = fn.get("name") if isinstance(fn, dict) else None

    limit = data.get("max_completion_tokens")
    if limit is None:
        limit = data.get("max_tokens")
    if limit is not None:
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise WireError(400, f"Invalid 'max_tokens': {limit!r}. Expected an integer >= 1.", "max_tokens")
        conv.max_tokens = limit
    stop = data.get("stop")
    if isinstance(stop, str):
        conv.stops = (stop,)
    elif isinstance(stop, list):
        conv.stops = tuple(s for s in stop if isinstance(s, str))
    n = data.get("n")
    if n is not None:
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 128:
            raise WireError(400, f"Invalid 'n': {n!r}. Expected an integer between 1 and 128.", "n")
        conv.n = n
    rf = data.get("response_format")
    if isinstance(rf, dict):
        if rf.get("type") == "json_object":
            conv.json_mode = True
        elif rf.get("type") == "json_schema":
            conv.json_mode = True
            spec = rf.get("json_schema") or {}
            conv.json_schema = spec.get("schema") if isinstance(spec, dict) else None
    conv.stream = bool(data.get("stream"))
    opts = data.get("stream_options")
    extra = {
        "logprobs": bool(data.get("logprobs")),
        "top_logprobs": data.get("top_logprobs") or 0,
        "include_usage": bool(isinstance(opts, dict) and opts.get("include_usage")),
    }
    return conv, extra


def _usage(prompt: int, completion: int) -> dict:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _tool_call(c: Completion) -> dict:
    return {
        "id": "call_" + c.tool.id_hex,
        "type": "function",
        "function": {"name": c.tool.name, "arguments": c.tool.arguments},
    }


def new_id() -> str:
    return "chatcmpl-" + os.urandom(12).hex()


def response(conv: Conversation, completions: list[Completion], prompt_tokens: int, extra: dict) -> bytes:
    choices = []
    for i, c in enumerate(completions):
        if c.tool is not None:
            message = {"role": "assistant", "content": None, "tool_calls": [_tool_call(c)], "refusal": None, "annotations": []}
            lp = None
        else:
            message = {"role": "assistant", "content": c.text, "refusal": None, "annotations": []}
            lp = {"content": answers.logprobs(c.pieces, extra["top_logprobs"]), "refusal": None} if extra["logprobs"] else None
        choices.append({"index": i, "message": message, "logprobs": lp, "finish_reason": _FINISH[c.finish]})
    body = {
        "id": new_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": conv.model,
        "choices": choices,
        "usage": _usage(prompt_tokens, sum(c.tokens for c in completions)),
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    }
    return orjson.dumps(body)


def _choice_events(i: int, c: Completion, extra: dict, chunk) -> list[tuple[bytes, int]]:
    events = []
    if c.tool is not None:
        first = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_" + c.tool.id_hex,
                    "type": "function",
                    "function": {"name": c.tool.name, "arguments": ""},
                }
            ],
            "refusal": None,
        }
        events.append((chunk({"index": i, "delta": first, "logprobs": None, "finish_reason": None}), count_tokens(c.tool.name)))
        for piece in c.pieces:
            delta = {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
            events.append((chunk({"index": i, "delta": delta, "logprobs": None, "finish_reason": None}), 1))
    else:
        first = {"role": "assistant", "content": "", "refusal": None}
        events.append((chunk({"index": i, "delta": first, "logprobs": None, "finish_reason": None}), 0))
        want_lp = extra["logprobs"]
        top = extra["top_logprobs"]
        for k, piece in enumerate(c.pieces):
            lp = {"content": answers.logprobs((piece,), top, start=k), "refusal": None} if want_lp else None
            events.append((chunk({"index": i, "delta": {"content": piece}, "logprobs": lp, "finish_reason": None}), 1))
    events.append((chunk({"index": i, "delta": {}, "logprobs": None, "finish_reason": _FINISH[c.finish]}), 0))
    return events


def stream_events(conv: Conversation, completions: list[Completion], prompt_tokens: int, extra: dict) -> list[tuple[bytes, int]]:
    base = {
        "id": new_id(),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": conv.model,
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    }
    include_usage = extra["include_usage"]
    if include_usage:
        base["usage"] = None

    def chunk(choice: dict) -> bytes:
        base["choices"] = [choice]
        return b"data: " + orjson.dumps(base) + b"\n\n"

    per_choice = [_choice_events(i, c, extra, chunk) for i, c in enumerate(completions)]
    if len(per_choice) == 1:
        events = per_choice[0]
    else:
        events = [ev for group in zip_longest(*per_choice) for ev in group if ev is not None]
    if include_usage:
        base["choices"] = []
        base["usage"] = _usage(prompt_tokens, sum(c.tokens for c in completions))
        events.append((b"data: " + orjson.dumps(base) + b"\n\n", 0))
    events.append((DONE, 0))
    return events


# --- embeddings and models ----------------------------------------------------------


def embeddings(data: dict, profile: Profile) -> tuple[bytes, str]:
    """Returns (body, the text used for fault markers)."""
    raw = data.get("input")
    if isinstance(raw, str):
        inputs: list = [raw]
    elif isinstance(raw, list) and raw:
        inputs = raw if not isinstance(raw[0], int) else [raw]
    else:
        raise WireError(400, "'input' must be a non-empty string or array.", "input", "invalid_value")
    dims = data.get("dimensions") or profile.dimensions
    if not isinstance(dims, int) or isinstance(dims, bool) or not 1 <= dims <= 8192:
        raise WireError(400, f"Invalid 'dimensions': {dims!r}.", "dimensions")
    fmt = data.get("encoding_format") or "float"
    if fmt not in ("float", "base64"):
        raise WireError(400, f"Invalid 'encoding_format': {fmt!r}.", "encoding_format")
    items = []
    tokens = 0
    marker_text = ""
    for i, item in enumerate(inputs):
        if isinstance(item, str):
            text = item
            tokens += count_tokens(item)
            marker_text = item
        elif isinstance(item, list) and all(isinstance(x, int) for x in item):
            text = "\x00ids:" + ",".join(map(str, item))
            tokens += len(item)
        else:
            raise WireError(400, "'input' items must be strings or arrays of token ids.", "input")
        vec = embed(text, dims)
        items.append({"object": "embedding", "index": i, "embedding": to_base64(vec) if fmt == "base64" else vec})
    body = {
        "object": "list",
        "data": items,
        "model": profile.id,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return orjson.dumps(body), marker_text


def model_object(profile: Profile) -> dict:
    return {"id": profile.id, "object": "model", "created": CREATED, "owned_by": profile.provider}


def models_list(profiles: dict[str, Profile]) -> bytes:
    return orjson.dumps({"object": "list", "data": [model_object(p) for p in profiles.values()]})
