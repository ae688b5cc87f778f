"""An Anthropic stream's prompt count keeps its cache-creation and cache-read tokens to
the end: message_delta's cumulative counts replace message_start's one by one, and an
input_tokens there (the uncached input alone) does not replace the whole prompt count."""

import asyncio
from decimal import Decimal

import orjson
import pytest

from apps.core.llm import Final, Usage
from apps.providers.adapters import adapter_for
from tests.providers.test_sampling_payloads import model

START = {"input_tokens": 5, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 1000, "output_tokens": 1}


def streamed(final_usage: dict) -> Usage:
    chunks = [("message_start", {"type": "message_start", "message": {"id": "msg_1", "usage": START}}),
              ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                       "delta": {"type": "text_delta", "text": "hi"}}),
              ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": final_usage}),
              ("message_stop", {"type": "message_stop"})]

    async def pairs():
        for event, data in chunks:
            yield event, orjson.dumps(data)

    async def final():
        return [e async for e in adapter_for("anthropic").events(pairs(), model("anthropic")) if isinstance(e, Final)]

    [end] = asyncio.run(final())
    return end.usage


@pytest.mark.parametrize("final_usage", [
    {**START, "output_tokens": 12},                                       # every count, as the API documents them
    {"input_tokens": 5, "output_tokens": 12},                             # the uncached input only
    {"input_tokens": 5, "cache_creation_input_tokens": None, "cache_read_input_tokens": None, "output_tokens": 12},
])
def test_a_streams_prompt_count_keeps_its_cached_tokens(final_usage):
    usage = streamed(final_usage)
    assert usage == Usage(1105, 12)
    # The same as the whole answer with those counts, and priced on all of them.
    whole = adapter_for("anthropic").parse({"content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn",
                                            "usage": {**START, "output_tokens": 12}}, model("anthropic"))
    assert usage == whole.usage
    assert model("anthropic").cost_micros(usage) == Decimal(1117)
