"""OpenAI Chat Completions, and any server speaking it (vLLM, Ollama, Together, Groq...)."""

import orjson

from apps.core.llm import ChatRequest, ChatResult, Delta, Final, Finish, Usage

from ..catalog import ModelInfo
from ..errors import UpstreamError
from ..upstreams import Upstream, upstream_for
from .base import Adapter, read_answer


def usage_of(raw: dict | None) -> Usage:
    raw = raw or {}
    # A count sent as null is read as a missing one, 0: costs and ledger rows need numbers.
    return Usage(prompt_tokens=raw.get("prompt_tokens") or 0, completion_tokens=raw.get("completion_tokens") or 0)


class OpenAIAdapter(Adapter):
    def url(self, upstream: Upstream, model: ModelInfo, stream: bool) -> str:
        return f"{upstream.base_url}/chat/completions"

    def headers(self, upstream: Upstream) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if upstream.api_key:
            headers["authorization"] = f"Bearer {upstream.api_key}"
        return headers

    def payload(self, req: ChatRequest, model: ModelInfo) -> dict:
        body = {**req.extra, "model": model.upstream_id, "messages": req.messages}
        if req.max_tokens is not None:
            # OpenAI itself wants max_completion_tokens; other servers still read max_tokens.
            body["max_completion_tokens" if self.provider == "openai" else "max_tokens"] = req.max_tokens
        for name in ("temperature", "top_p", "stop", "tools", "tool_choice", "response_format", "top_logprobs", "user"):
            value = getattr(req, name)
            if value is not None:
                body[name] = value
        if req.n != 1:
            body["n"] = req.n
        if req.logprobs:
            body["logprobs"] = True
        if req.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}  # we always need the usage
        return body

    def parse(self, body: dict, model: ModelInfo) -> ChatResult:
        choice = body["choices"][0]
        message = choice.get("message") or {}
        return ChatResult(
            id=body.get("id", ""),
            model=model.id,
            content=message.get("content"),
            finish_reason=choice.get("finish_reason") or "stop",
            usage=usage_of(body.get("usage")),
            tool_calls=message.get("tool_calls") or None,
            logprobs=choice.get("logprobs"),
            provider=self.provider,
        )

    async def events(self, pairs, model: ModelInfo):
        usage, response_id, finished = None, "", False
        async for _, data in pairs:
            if data == b"[DONE]":
                if not finished:
                    raise UpstreamError(502, "upstream stream ended without a finish reason", retryable=False)
                yield Final(usage=usage or Usage(), id=response_id, model=model.id)
                return
            chunk = orjson.loads(data)
            if "error" in chunk:
                raise UpstreamError(502, str(chunk["error"].get("message", chunk["error"])), retryable=False)
            response_id = chunk.get("id", response_id)
            if chunk.get("usage"):
                usage = usage_of(chunk["usage"])
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta") or {}
                content, tool_calls = delta.get("content"), delta.get("tool_calls")
                if content or tool_calls or choice.get("logprobs"):
                    yield Delta(content=content or None, tool_calls=tool_calls, logprobs=choice.get("logprobs"))
                if choice.get("finish_reason"):
                    finished = True
                    yield Finish(choice["finish_reason"])
        # No [DONE]: the stream was cut. The base class turns this into an error.

    async def embed(self, data: dict, model: ModelInfo) -> tuple[dict, Usage]:
        """An /embeddings call, returned in OpenAI's shape under our model id."""
        upstream = upstream_for(self.provider)
        body = await self.post(f"{upstream.base_url}/embeddings", {**data, "model": model.upstream_id}, upstream, model)
        return read_answer(lambda answer: ({**answer, "model": model.id}, usage_of(answer.get("usage"))), body)
