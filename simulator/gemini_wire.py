"""Google Gemini generateContent wire format (JSON, SSE with ?alt=sse, JSON-array stream
without it), countTokens, the models list and errors.

Stream chunks are whole GenerateContentResponse objects, one per token (a tool call is a
single chunk holding the functionCall part); each carries usageMetadata with the
cumulative candidatesTokenCount, so the last one is final; the last chunk of a candidate
has its finishReason. SSE has no terminator.
"""

from __future__ import annotations

import os
from itertools import zip_longest

import orjson

from .answers import Completion, Conversation, Tool, count_tokens
from .errors import WireError
from .profiles import Profile

SSE_CONTENT_TYPE = b"text/event-stream"
_FINISH = {"stop": "STOP", "stop_sequence": "STOP", "length": "MAX_TOKENS", "tool": "STOP"}
_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def error(status: int, message: str, param: str | None = None, code: str | None = None) -> tuple[int, bytes, list]:
    name = _STATUS.get(status) or ("FAILED_PRECONDITION" if status < 500 else "UNKNOWN")
    headers = [(b"retry-after", b"1")] if status == 429 else []
    return status, orjson.dumps({"error": {"code": status, "message": message, "status": name}}), headers


def model_not_found(model: str) -> tuple[int, bytes, list]:
    return error(404, f"models/{model} is not found for API version v1beta, or is not supported for generateContent.")


def fault_error(status: int) -> tuple[int, bytes, list]:
    messages = {
        429: "Resource has been exhausted (e.g. check quota). (simulated fault)",
        500: "An internal error has occurred. (simulated fault)",
        503: "The model is overloaded. Please try again later. (simulated fault)",
    }
    return error(status, messages.get(status, f"Simulated upstream fault: HTTP {status}."))


def _get(d: dict, camel: str, snake: str):
    v = d.get(camel)
    return d.get(snake) if v is None else v


def _parts_text(parts, texts: list[str]) -> tuple[str, str | None]:
    plain: list[str] = []
    result = None
    if not isinstance(parts, list):
        return "", None
    for part in parts:
        if not isinstance(part, dict):
            continue
        t = part.get("text")
        if isinstance(t, str):
            if not part.get("thought"):
                plain.append(t)
            texts.append(t)
            continue
        call = _get(part, "functionCall", "function_call")
        if isinstance(call, dict):
            texts.append(str(call.get("name") or ""))
            texts.append(orjson.dumps(call.get("args", {})).decode())
            continue
        resp = _get(part, "functionResponse", "function_response")
        if isinstance(resp, dict):
            result = orjson.dumps(resp.get("response", {})).decode()
            texts.append(result)
    return "\n".join(plain), result


def parse(data: dict, model: str) -> tuple[Conversation, dict]:
    contents = data.get("contents")
    if isinstance(contents, dict):
        contents = [contents]
    if not isinstance(contents, list) or not contents:
        raise WireError(400, "* GenerateContentRequest.contents: contents is not specified")
    conv = Conversation(model=model)
    texts = conv.texts
    system = _get(data, "systemInstruction", "system_instruction")
    if isinstance(system, dict):
        _parts_text(system.get("parts"), texts)
        conv.messages += 1
    elif isinstance(system, str):
        texts.append(system)
        conv.messages += 1
    last_user = ""
    result = None
    for content in contents:
        if not isinstance(content, dict):
            raise WireError(400, "* GenerateContentRequest.contents: invalid content")
        plain, result = _parts_text(content.get("parts"), texts)
        if content.get("role", "user") == "user" and (plain or result is None):
            last_user = plain
    conv.messages += len(contents)
    conv.last_user = last_user
    if result is not None:
        conv.tool_result = result

    tools = data.get("tools")
    if isinstance(tools, list) and tools:
        conv.tools_json_tokens = count_tokens(orjson.dumps(tools).decode())
        for t in tools:
            if not isinstance(t, dict):
                continue
            for decl in _get(t, "functionDeclarations", "function_declarations") or ():
                if isinstance(decl, dict) and isinstance(decl.get("name"), str):
                    schema = decl.get("parameters") or _get(decl, "parametersJsonSchema", "parameters_json_schema")
                    conv.tools.append(Tool(decl["name"], schema or {}))
    tool_config = _get(data, "toolConfig", "tool_config")
    if isinstance(tool_config, dict):
        fcc = _get(tool_config, "functionCallingConfig", "function_calling_config") or {}
        mode = str(fcc.get("mode") or "AUTO").upper()
        if mode == "NONE":
            conv.tool_mode = "none"
        elif mode in ("ANY", "VALIDATED"):
            conv.tool_mode = "forced" if mode == "ANY" else "auto"
            allowed = _get(fcc, "allowedFunctionNames", "allowed_function_names")
            if allowed:
                conv.forced_tool = allowed[0]

    config = _get(data, "generationConfig", "generation_config") or {}
    if isinstance(config, dict):
        limit = _get(config, "maxOutputTokens", "max_output_tokens")
        if limit is not None:
            if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
                raise WireError(400, "* GenerateContentRequest.generation_config.max_output_tokens: must be positive")
            conv.max_tokens = limit
        stops = _get(config, "stopSequences", "stop_sequences")
        if isinstance(stops, list):
            conv.stops = tuple(s for s in stops if isinstance(s, str))
        mime = _get(config, "responseMimeType", "response_mime_type")
        if mime == "application/json":
            conv.json_mode = True
            schema = _get(config, "responseSchema", "response_schema") or _get(
                config, "responseJsonSchema", "response_json_schema"
            )
            conv.json_schema = schema if isinstance(schema, dict) else None
        n = _get(config, "candidateCount", "candidate_count")
        if n is not None:
            if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 8:
                raise WireError(400, "* GenerateContentRequest.generation_config.candidate_count: must be 1..8")
            conv.n = n
    return conv, {}


def count_tokens_response(data: dict, model: str) -> bytes:
    request = data.get("generateContentRequest") or data
    conv, _ = parse(request, model)
    return orjson.dumps({"totalTokens": conv.prompt_tokens()})


def _part(c: Completion) -> dict:
    if c.tool is not None:
        return {"functionCall": {"name": c.tool.name, "args": c.tool.args}}
    return {"text": c.text}


def _usage(prompt: int, completion: int) -> dict:
    return {"promptTokenCount": prompt, "candidatesTokenCount": completion, "totalTokenCount": prompt + completion}


def response(conv: Conversation, completions: list[Completion], prompt_tokens: int, extra: dict) -> bytes:
    body = {
        "candidates": [
            {"content": {"parts": [_part(c)], "role": "model"}, "finishReason": _FINISH[c.finish], "index": i}
            for i, c in enumerate(completions)
        ],
        "usageMetadata": _usage(prompt_tokens, sum(c.tokens for c in completions)),
        "modelVersion": conv.model,
        "responseId": os.urandom(9).hex(),
    }
    return orjson.dumps(body)


def stream_events(conv: Conversation, completions: list[Completion], prompt_tokens: int, extra: dict) -> list[tuple[dict, int]]:
    """Returns (GenerateContentResponse dict, tokens) pairs; the caller frames them."""
    response_id = os.urandom(9).hex()
    per_choice: list[list[tuple[int, dict, int]]] = []
    for i, c in enumerate(completions):
        items: list[tuple[int, dict, int]] = []
        if c.tool is not None:
            items.append((i, {"content": {"parts": [_part(c)], "role": "model"}, "finishReason": "STOP", "index": i}, c.tokens))
        else:
            pieces = c.pieces or ("",)
            last = len(pieces) - 1
            for k, piece in enumerate(pieces):
                cand = {"content": {"parts": [{"text": piece}], "role": "model"}, "index": i}
                if k == last:
                    cand["finishReason"] = _FINISH[c.finish]
                items.append((i, cand, 1 if c.pieces else 0))
        per_choice.append(items)
    ordered = (
        per_choice[0] if len(per_choice) == 1 else [it for group in zip_longest(*per_choice) for it in group if it is not None]
    )
    out = []
    done = 0
    for _, cand, ntok in ordered:
        done += ntok
        out.append(
            (
                {
                    "candidates": [cand],
                    "usageMetadata": _usage(prompt_tokens, done),
                    "modelVersion": conv.model,
                    "responseId": response_id,
                },
                ntok,
            )
        )
    return out


def frame_sse(chunks: list[tuple[dict, int]]) -> list[tuple[bytes, int]]:
    return [(b"data: " + orjson.dumps(chunk) + b"\n\n", n) for chunk, n in chunks]


def frame_json_array(chunks: list[tuple[dict, int]]) -> list[tuple[bytes, int]]:
    out = []
    last = len(chunks) - 1
    for k, (chunk, n) in enumerate(chunks):
        prefix = b"[" if k == 0 else b""
        suffix = b"]" if k == last else b",\r\n"
        out.append((prefix + orjson.dumps(chunk) + suffix, n))
    return out


def models_list(profiles: dict[str, Profile]) -> bytes:
    return orjson.dumps(
        {
            "models": [
                {
                    "name": f"models/{p.id}",
                    "baseModelId": p.id,
                    "version": "001",
                    "displayName": p.id,
                    "inputTokenLimit": 1048576,
                    "outputTokenLimit": 65536,
                    "supportedGenerationMethods": ["generateContent", "streamGenerateContent", "countTokens"],
                }
                for p in profiles.values()
            ]
        }
    )
