"""Anthropic Messages API."""

import orjson

from apps.core.llm import ChatRequest, ChatResult, Delta, Final, Finish, Usage, content_text, data_url, image_url

from ..catalog import ModelInfo
from ..errors import UpstreamError
from ..upstreams import Upstream
from .base import Adapter

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
# A turn that did not end (pause_turn: a server tool's turn to be continued) or that was
# cut (the context window; any reason added later) is "length", the nearest an OpenAI
# client can read: never "stop", which the cache stores and the judges score as finished.
STOP_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
                "pause_turn": "length", "model_context_window_exceeded": "length", "refusal": "content_filter"}
UNFINISHED = "length"


def _parts(content) -> list[dict]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for part in content or ():
        if part.get("type") == "text":
            blocks.append({"type": "text", "text": part.get("text", "")})
        elif (url := image_url(part)) is not None:
            inline = data_url(url)
            blocks.append({"type": "image", "source": {"type": "base64", "media_type": inline[0], "data": inline[1]}
                           if inline else {"type": "url", "url": url}})
    return blocks


def to_anthropic_messages(messages: list[dict]) -> tuple[str | None, list[dict]]:
    """Canonical (OpenAI-shaped) messages -> Anthropic's system string and message list."""
    system, out = [], []
    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(content_text(message.get("content")))
            continue
        if role == "tool":
            block = {"type": "tool_result", "tool_use_id": message.get("tool_call_id", ""),
                     "content": content_text(message.get("content"))}
            if out and out[-1]["role"] == "user" and all(b.get("type") == "tool_result" for b in out[-1]["content"]):
                out[-1]["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
            continue
        blocks = _parts(message.get("content"))
        for call in message.get("tool_calls") or ():
            fn = call.get("function", {})
            try:
                arguments = orjson.loads(fn.get("arguments") or "{}")
            except orjson.JSONDecodeError:
                arguments = {}
            blocks.append({"type": "tool_use", "id": call.get("id", ""), "name": fn.get("name", ""), "input": arguments})
        out.append({"role": "assistant" if role == "assistant" else "user", "content": blocks})
    return ("\n\n".join(s for s in system if s) or None), out


def to_anthropic_tool_choice(choice):
    if choice in (None, "auto"):
        return {"type": "auto"} if choice else None
    if choice == "required":
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "tool", "name": choice["function"]["name"]}
    return None


class AnthropicAdapter(Adapter):
    counts_tokens = True

    def url(self, upstream: Upstream, model: ModelInfo, stream: bool) -> str:
        return f"{upstream.base_url}/v1/messages"

    def headers(self, upstream: Upstream) -> dict[str, str]:
        return {"content-type": "application/json", "x-api-key": upstream.api_key, "anthropic-version": API_VERSION}

    def payload(self, req: ChatRequest, model: ModelInfo) -> dict:
        system, messages = to_anthropic_messages(req.messages)
        body = {
            "model": model.upstream_id,
            "messages": messages,
            "max_tokens": req.max_tokens or min(DEFAULT_MAX_TOKENS, model.max_output_tokens or DEFAULT_MAX_TOKENS),
        }
        if system:
            body["system"] = system
        if req.temperature is not None:
            body["temperature"] = min(req.temperature, 1.0)  # Anthropic's range is 0..1
        if req.top_p is not None:
            body["top_p"] = req.top_p
        if req.top_k is not None:
            body["top_k"] = req.top_k
        if req.stop:
            body["stop_sequences"] = req.stop
        if req.tools:
            body["tools"] = [
                {"name": t["function"]["name"], "description": t["function"].get("description", ""),
                 "input_schema": t["function"].get("parameters") or {"type": "object", "properties": {}}}
                for t in req.tools
            ]
            choice = to_anthropic_tool_choice(req.tool_choice)
            if req.extra.get("parallel_tool_calls") is False and choice != {"type": "none"}:
                choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
            if choice:
                body["tool_choice"] = choice
        if req.user:
            body["metadata"] = {"user_id": req.user}
        if req.stream:
            body["stream"] = True
        return body

    def count_url(self, upstream: Upstream, model: ModelInfo) -> str:
        return f"{upstream.base_url}/v1/messages/count_tokens"

    def count_payload(self, req: ChatRequest, model: ModelInfo) -> dict:
        # What counts: the generation settings are not accepted there.
        body = self.payload(req, model)
        return {name: body[name] for name in ("model", "messages", "system", "tools", "tool_choice") if name in body}

    def count_of(self, body: dict) -> int:
        return body["input_tokens"]

    def parse(self, body: dict, model: ModelInfo) -> ChatResult:
        texts, calls = [], []
        for block in body.get("content") or ():
            if block.get("type") == "text":
                texts.append(block.get("text", ""))
            elif block.get("type") == "tool_use":
                calls.append({"id": block["id"], "type": "function",
                              "function": {"name": block["name"], "arguments": orjson.dumps(block.get("input", {})).decode()}})
        return ChatResult(
            id=body.get("id", ""),
            model=model.id,
            content="".join(texts) if texts or not calls else None,
            finish_reason=STOP_REASONS.get(body.get("stop_reason") or "end_turn", UNFINISHED),
            usage=usage_of(body.get("usage")),
            tool_calls=calls or None,
            provider=self.provider,
            stop_sequence=body.get("stop_sequence"),
        )

    async def events(self, pairs, model: ModelInfo):
        counts, message_id, stop_reason = {}, "", None   # the provider's usage fields, as last sent
        stop_sequence = None
        tool_index = {}  # Anthropic content block index -> our tool_calls index
        async for event, data in pairs:
            payload = orjson.loads(data)
            kind = payload.get("type", event)
            if kind == "message_start":
                message = payload["message"]
                message_id = message.get("id", "")
                counts = dict(message.get("usage") or {})
            elif kind == "content_block_start":
                block = payload["content_block"]
                if block.get("type") == "tool_use":
                    tool_index[payload["index"]] = len(tool_index)
                    yield Delta(tool_calls=[{"index": tool_index[payload["index"]], "id": block["id"], "type": "function",
                                             "function": {"name": block["name"], "arguments": ""}}])
                elif block.get("text"):
                    yield Delta(content=block["text"])
            elif kind == "content_block_delta":
                delta = payload["delta"]
                if delta.get("type") == "text_delta" and delta.get("text"):
                    yield Delta(content=delta["text"])
                elif delta.get("type") == "input_json_delta":
                    yield Delta(tool_calls=[{"index": tool_index.get(payload["index"], 0),
                                             "function": {"arguments": delta.get("partial_json", "")}}])
            elif kind == "message_delta":
                delta = payload.get("delta") or {}
                stop_reason, stop_sequence = delta.get("stop_reason") or stop_reason, delta.get("stop_sequence")
                # Anthropic's counts here (input, cache creation, cache read, output) are cumulative:
                # each replaces message_start's, never adds to it; one missing, null or 0 (they never
                # fall) keeps it, so a count of the uncached input alone leaves the cached tokens in.
                counts.update((name, count) for name, count in (payload.get("usage") or {}).items() if count)
            elif kind == "message_stop":
                yield Finish(STOP_REASONS.get(stop_reason or "end_turn", UNFINISHED), stop_sequence)
                yield Final(usage=usage_of(counts), id=message_id, model=model.id)
                return
            elif kind == "error":
                raise UpstreamError(502, (payload.get("error") or {}).get("message", "upstream error"), retryable=False)


def usage_of(raw: dict | None) -> Usage:
    raw = raw or {}
    prompt = (raw.get("input_tokens") or 0) + (raw.get("cache_creation_input_tokens") or 0) + (
        raw.get("cache_read_input_tokens") or 0)
    return Usage(prompt_tokens=prompt, completion_tokens=raw.get("output_tokens") or 0)
