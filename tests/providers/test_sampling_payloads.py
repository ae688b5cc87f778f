"""Sampling parameters reach the upstreams that take them: top_k (Anthropic Messages,
Gemini generationConfig.topK); OpenAI's API has none, so an OpenAI-protocol model is sent
none. A different top_k is a different cache context."""

from decimal import Decimal

from apps.cache.keys import context_key
from apps.core.llm import ChatRequest
from apps.providers.adapters.anthropic import AnthropicAdapter
from apps.providers.adapters.gemini import GeminiAdapter
from apps.providers.adapters.openai import OpenAIAdapter
from apps.providers.catalog import ModelInfo


def request(**fields) -> ChatRequest:
    return ChatRequest(model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=10, **fields)


def model(provider: str) -> ModelInfo:
    return ModelInfo(id="m", provider=provider, upstream_id="m", family="f", tier="cheap", input_per_mtok=Decimal(1),
                     output_per_mtok=Decimal(1), context_window=1000, max_output_tokens=100,
                     capabilities=frozenset({"chat"}), fallbacks=())


def test_top_k_goes_to_anthropic_and_gemini_only():
    assert AnthropicAdapter("anthropic").payload(request(top_k=5), model("anthropic"))["top_k"] == 5
    assert GeminiAdapter("gemini").payload(request(top_k=5), model("gemini"))["generationConfig"]["topK"] == 5
    assert "top_k" not in OpenAIAdapter("openai").payload(request(top_k=5), model("openai"))
    assert "top_k" not in AnthropicAdapter("anthropic").payload(request(), model("anthropic"))


def test_top_k_is_part_of_the_cache_context_and_leaves_the_other_keys_as_they_were():
    assert context_key(request(top_k=5), "r") != context_key(request(top_k=6), "r") != context_key(request(), "r")
    # A request without top_k keeps the key its entries were cached under before top_k was read.
    assert context_key(request(), "r") == "5822236db37e1c4c06dc30b80a6e5148"
