"""Google Gemini generateContent / streamGenerateContent."""

import hashlib
import mimetypes

import orjson

from apps.core.llm import ChatRequest, ChatResult, Delta, Final, Finish, Usage, content_text, data_url, image_url

from ..catalog import ModelInfo
from ..errors import UpstreamError
from ..upstreams import Upstream
from .base import Adapter

FINISH_REASONS = {"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter", "RECITATION": "content_filter",
                  "PROHIBITED_CONTENT": "content_filter", "BLOCKLIST": "content_filter", "SPII": "content_filter",
                  "LANGUAGE": "content_filter", "IMAGE_SAFETY": "content_filter",
                  "IMAGE_PROHIBITED_CONTENT": "content_filter", "IMAGE_RECITATION": "content_filter"}
# Any other reason (OTHER, MALFORMED_FUNCTION_CALL, FINISH_REASON_UNSPECIFIED, ones added
# later) is an answer that did not end normally: "length", the nearest an OpenAI client
# can read; never "stop", which the cache stores and the judges score as finished.
UNFINISHED = "length"


def _call_id(name: str, args: dict, n: int) -> str:
    # Gemini has no call ids; derive a stable one so clients can answer the call.
    return "call_" + hashlib.sha256(f"{n}:{name}:{orjson.dumps(args).decode()}".encode()).hexdigest()[:24]


def _parts(content) -> list[dict]:
    """A turn's text and images, in order. An image by URL goes as fileData, whose MIME type
    Gemini requires: taken from the URL's extension, else JPEG."""
    if not isinstance(content, list):
        return [{"text": t} for t in [content_text(content)] if t]
    parts = []
    for part in content:
        if (url := image_url(part)) is not None:
            inline = data_url(url)
            parts.append({"inlineData": {"mimeType": inline[0], "data": inline[1]}} if inline else
                         {"fileData": {"mimeType": mimetypes.guess_type(url)[0] or "image/jpeg", "fileUri": url}})
        elif isinstance(part, dict) and part.get("type") == "text" and part.get("text"):
            parts.append({"text": part["text"]})
    return parts


def to_gemini_contents(messages: list[dict]) -> tuple[dict | None, list[dict]]:
    system, contents, names = [], [], {}
    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            system.append({"text": content_text(message.get("content"))})
        elif role == "tool":
            name = names.get(message.get("tool_call_id"), "tool")
            part = {"functionResponse": {"name": name, "response": {"content": content_text(message.get("content"))}}}
            if contents and contents[-1]["role"] == "user" and "functionResponse" in contents[-1]["parts"][-1]:
                contents[-1]["parts"].append(part)
            else:
                contents.append({"role": "user", "parts": [part]})
        else:
            parts = _parts(message.get("content"))
            for call in message.get("tool_calls") or ():
                fn = call.get("function", {})
                names[call.get("id")] = fn.get("name", "")
                try:
                    args = orjson.loads(fn.get("arguments") or "{}")
                except orjson.JSONDecodeError:
                    args = {}
                parts.append({"functionCall": {"name": fn.get("name", ""), "args": args}})
            contents.append({"role": "model" if role == "assistant" else "user", "parts": parts or [{"text": ""}]})
    return ({"parts": system} if system else None), contents


class GeminiAdapter(Adapter):
    counts_tokens = True

    def url(self, upstream: Upstream, model: ModelInfo, stream: bool) -> str:
        if stream:
            return f"{upstream.base_url}/models/{model.upstream_id}:streamGenerateContent?alt=sse"
        return f"{upstream.base_url}/models/{model.upstream_id}:generateContent"

    def headers(self, upstream: Upstream) -> dict[str, str]:
        return {"content-type": "application/json", "x-goog-api-key": upstream.api_key}

    def count_url(self, upstream: Upstream, model: ModelInfo) -> str:
        return f"{upstream.base_url}/models/{model.upstream_id}:countTokens"

    def count_payload(self, req: ChatRequest, model: ModelInfo) -> dict:
        # The whole request, so the system instruction and tools are counted with the turns.
        return {"generateContentRequest": {"model": f"models/{model.upstream_id}", **self.payload(req, model)}}

    def count_of(self, body: dict) -> int:
        return body["totalTokens"]

    def payload(self, req: ChatRequest, model: ModelInfo) -> dict:
        system, contents = to_gemini_contents(req.messages)
        body: dict = {"contents": contents}
        if system:
            body["systemInstruction"] = system
        config = {}
        if req.max_tokens is not None:
            config["maxOutputTokens"] = req.max_tokens
        if req.temperature is not None:
            config["temperature"] = req.temperature
        if req.top_p is not None:
            config["topP"] = req.top_p
        if req.top_k is not None:
            config["topK"] = req.top_k
        if req.stop:
            config["stopSequences"] = req.stop
        if req.response_format and req.response_format.get("type") in ("json_object", "json_schema"):
            config["responseMimeType"] = "application/json"
        if req.response_format and req.response_format.get("type") == "json_schema" and \
                (schema := req.response_format["json_schema"].get("schema")) is not None:   # optional in OpenAI's API
            config["responseJsonSchema"] = schema
        if config:
            body["generationConfig"] = config
        if req.tools:
            body["tools"] = [{"functionDeclarations": [
                {"name": t["function"]["name"], "description": t["function"].get("description", ""),
                 # As JSON Schema: `parameters` takes an OpenAPI subset and refuses common schemas
                 # (additionalProperties, $schema, const), a 400 no fallback follows.
                 **({"parametersJsonSchema": t["function"]["parameters"]} if t["function"].get("parameters") else {})}
                for t in req.tools
            ]}]
            if req.tool_choice == "required" or isinstance(req.tool_choice, dict):
                config = {"mode": "ANY"}
                if isinstance(req.tool_choice, dict):
                    config["allowedFunctionNames"] = [req.tool_choice["function"]["name"]]
                body["toolConfig"] = {"functionCallingConfig": config}
            elif req.tool_choice == "none":
                body["toolConfig"] = {"functionCallingConfig": {"mode": "NONE"}}
        return body

    @staticmethod
    def _usage(body: dict) -> Usage:
        meta = body.get("usageMetadata") or {}
        # A count sent as null is read as a missing one, 0: costs and ledger rows need numbers.
        return Usage(prompt_tokens=meta.get("promptTokenCount") or 0,
                     completion_tokens=(meta.get("candidatesTokenCount") or 0) + (meta.get("thoughtsTokenCount") or 0))

    def parse(self, body: dict, model: ModelInfo) -> ChatResult:
        candidate = (body.get("candidates") or [{}])[0]
        texts, calls = [], []
        for part in (candidate.get("content") or {}).get("parts") or ():
            if "text" in part and not part.get("thought"):
                texts.append(part["text"])
            elif "functionCall" in part:
                call = part["functionCall"]
                calls.append({"id": _call_id(call["name"], call.get("args", {}), len(calls)), "type": "function",
                              "function": {"name": call["name"], "arguments": orjson.dumps(call.get("args", {})).decode()}})
        reason = FINISH_REASONS.get(candidate.get("finishReason", "STOP"), UNFINISHED)
        return ChatResult(
            id=body.get("responseId", ""),
            model=model.id,
            content="".join(texts) if texts or not calls else None,
            finish_reason="tool_calls" if calls and reason == "stop" else reason,
            usage=self._usage(body),
            tool_calls=calls or None,
            provider=self.provider,
        )

    async def events(self, pairs, model: ModelInfo):
        usage, response_id, reason, n_calls = Usage(), "", None, 0
        async for _, data in pairs:
            chunk = orjson.loads(data)
            if "error" in chunk:
                raise UpstreamError(502, str(chunk["error"].get("message", chunk["error"])), retryable=False)
            response_id = chunk.get("responseId", response_id)
            if chunk.get("usageMetadata"):
                usage = self._usage(chunk)  # cumulative on every chunk: the last one counts
            candidate = (chunk.get("candidates") or [{}])[0]
            for part in (candidate.get("content") or {}).get("parts") or ():
                if part.get("text") and not part.get("thought"):
                    yield Delta(content=part["text"])
                elif "functionCall" in part:
                    call = part["functionCall"]
                    args = orjson.dumps(call.get("args", {})).decode()
                    yield Delta(tool_calls=[{"index": n_calls, "id": _call_id(call["name"], call.get("args", {}), n_calls),
                                             "type": "function", "function": {"name": call["name"], "arguments": args}}])
                    n_calls += 1
            if candidate.get("finishReason"):
                reason = FINISH_REASONS.get(candidate["finishReason"], UNFINISHED)
        if reason is None:
            raise UpstreamError(502, "upstream stream ended before the answer was complete", retryable=False)
        yield Finish("tool_calls" if n_calls and reason == "stop" else reason)
        yield Final(usage=usage, id=response_id, model=model.id)
