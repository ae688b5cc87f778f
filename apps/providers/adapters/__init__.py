"""One adapter per wire protocol. Each turns a canonical ChatRequest into the provider's
request and the provider's answer (whole or streamed) back into canonical results."""

from .anthropic import AnthropicAdapter
from .base import Adapter
from .gemini import GeminiAdapter
from .openai import OpenAIAdapter

ADAPTERS: dict[str, Adapter] = {
    "openai": OpenAIAdapter("openai"),
    "local": OpenAIAdapter("local"),
    "anthropic": AnthropicAdapter("anthropic"),
    "gemini": GeminiAdapter("gemini"),
}


def adapter_for(provider: str) -> Adapter:
    return ADAPTERS[provider]
