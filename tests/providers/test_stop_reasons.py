"""An answer the provider did not end normally (cut by the context window, a paused turn,
a Gemini answer stopped for any reason but STOP) is never read as "stop": the cache would
store it and serve it for its TTL, and the judges would score it as a finished answer."""

import asyncio

import orjson
import pytest

from apps.cache import services
from apps.core.llm import Finish
from apps.providers.adapters import adapter_for
from tests.providers.test_sampling_payloads import model

PLAN = services.Plan(tenant_id=1, api_key_id="k", scope="", context="c", exact="e", prompt="p", threshold=0.85,
                     target=None, ttl_seconds=60, tool_calls=False, generation=0)


def anthropic_answer(reason: str) -> dict:
    return {"id": "msg_1", "content": [{"type": "text", "text": "The first half of"}], "stop_reason": reason,
            "usage": {"input_tokens": 10, "output_tokens": 5}}


def anthropic_stream(reason: str) -> list[tuple[str, dict]]:
    return [("message_start", {"type": "message_start", "message": {"id": "msg_1", "usage": {"input_tokens": 10}}}),
            ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                     "delta": {"type": "text_delta", "text": "The first half of"}}),
            ("message_delta", {"type": "message_delta", "delta": {"stop_reason": reason}, "usage": {"output_tokens": 5}}),
            ("message_stop", {"type": "message_stop"})]


def gemini_answer(reason: str) -> dict:
    return {"responseId": "r", "candidates": [{"content": {"parts": [{"text": "Partial answer"}]}, "finishReason": reason}],
            "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2}}


CASES = [("anthropic", "model_context_window_exceeded", "length"), ("anthropic", "pause_turn", "length"),
         ("anthropic", "a_reason_added_later", "length"),
         ("gemini", "OTHER", "length"), ("gemini", "MALFORMED_FUNCTION_CALL", "length"),
         ("gemini", "FINISH_REASON_UNSPECIFIED", "length"), ("gemini", "A_REASON_ADDED_LATER", "length"),
         ("gemini", "IMAGE_SAFETY", "content_filter"), ("gemini", "LANGUAGE", "content_filter")]


@pytest.mark.parametrize(("provider", "reason", "read"), CASES)
def test_an_answer_stopped_abnormally_is_read_as_unfinished_and_not_cached(provider, reason, read):
    body = anthropic_answer(reason) if provider == "anthropic" else gemini_answer(reason)
    result = adapter_for(provider).parse(body, model(provider))
    assert result.finish_reason == read
    assert not services.cacheable(result, PLAN)


@pytest.mark.parametrize(("provider", "reason", "read"), CASES)
def test_a_stream_stopped_abnormally_finishes_as_unfinished(provider, reason, read):
    chunks = anthropic_stream(reason) if provider == "anthropic" else [("", gemini_answer(reason))]

    async def pairs():
        for event, data in chunks:
            yield event, orjson.dumps(data)

    async def finish():
        return [e async for e in adapter_for(provider).events(pairs(), model(provider)) if isinstance(e, Finish)]

    assert asyncio.run(finish()) == [Finish(read)]


@pytest.mark.parametrize(("provider", "body"), [("anthropic", anthropic_answer("end_turn")),
                                                ("gemini", gemini_answer("STOP"))])
def test_a_finished_answer_is_still_cached(provider, body):
    result = adapter_for(provider).parse(body, model(provider))
    assert result.finish_reason == "stop" and services.cacheable(result, PLAN)
