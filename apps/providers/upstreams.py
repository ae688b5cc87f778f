"""Where each provider is reached and with which credentials: settings only.

With AKA_SIMULATOR_URL set, every provider without a real key of its own is served by
the upstream simulator (demo, tests, benchmarks)."""

from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings


@dataclass(frozen=True, slots=True)
class Upstream:
    base_url: str
    api_key: str


DEFAULT_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com/v1beta",
    "local": "http://127.0.0.1:8000/v1",
}
SIMULATOR_PATHS = {"openai": "/v1", "anthropic": "", "gemini": "/v1beta", "local": "/v1"}


def upstream_for(provider: str) -> Upstream:
    key = {
        "openai": settings.OPENAI_API_KEY,
        "anthropic": settings.ANTHROPIC_API_KEY,
        "gemini": settings.GEMINI_API_KEY,
        "local": "",
    }[provider]
    base = {
        "openai": settings.OPENAI_BASE_URL,
        "anthropic": settings.ANTHROPIC_BASE_URL,
        "gemini": settings.GEMINI_BASE_URL,
        "local": settings.LOCAL_LLM_BASE_URL,
    }[provider]
    if settings.AKA_SIMULATOR_URL and not key and not base:
        return Upstream(settings.AKA_SIMULATOR_URL.rstrip("/") + SIMULATOR_PATHS[provider], "simulator")
    return Upstream((base or DEFAULT_BASE_URLS[provider]).rstrip("/"), key)


@lru_cache(maxsize=8)
def _stall_overrides(spec: str) -> dict[str, float]:
    pairs = (item.split("=", 1) for item in spec.split(",") if "=" in item)
    return {model.strip(): float(seconds) for model, seconds in pairs}


def stall_timeout(model_id: str) -> float:
    """Seconds a model may keep us waiting for its first byte, or between two chunks, before
    the call gives up on it (and, before the first byte, falls back to the next model):
    AKA_UPSTREAM_STALL_TIMEOUTS ("model=seconds,...") or AKA_UPSTREAM_READ_TIMEOUT."""
    return _stall_overrides(settings.AKA_UPSTREAM_STALL_TIMEOUTS).get(model_id, settings.AKA_UPSTREAM_READ_TIMEOUT)
