"""A token count a provider sends as null is read as a missing one, so the answer is
priced and its ledger row built (a null count made both raise after the provider had
been paid: the client got a 500 and the row was lost)."""

import asyncio
from decimal import Decimal

import orjson
import pytest

from apps.billing.services import CallFacts, ledger_row
from apps.core.llm import Final, Usage
from apps.providers.adapters import adapter_for
from tests.providers.test_sampling_payloads import model

WHOLE = {
    "openai": {"choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}],
               "usage": {"prompt_tokens": 5, "completion_tokens": None}},
    "gemini": {"candidates": [{"content": {"parts": [{"text": "hi"}]}, "finishReason": "STOP"}],
               "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": None, "thoughtsTokenCount": None}},
}

STREAMED = {
    "openai": ([("", {"choices": [{"delta": {"content": "hi"}, "finish_reason": "stop"}]}),
                ("", {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": None}}),
                ("", "[DONE]")], Usage(5, 0)),
    # message_delta's count is null: the one message_start gave stands.
    "anthropic": ([("message_start", {"type": "message_start", "message": {"usage": {"input_tokens": 5, "output_tokens": 1}}}),
                   ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                            "delta": {"type": "text_delta", "text": "hi"}}),
                   ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                                      "usage": {"output_tokens": None}}),
                   ("message_stop", {"type": "message_stop"})], Usage(5, 1)),
    "gemini": ([("", {"candidates": [{"content": {"parts": [{"text": "hi"}]}, "finishReason": "STOP"}],
                      "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": None}})], Usage(5, 0)),
}


def row_of(provider: str, usage: Usage) -> dict:
    return ledger_row(facts=CallFacts(tenant_id=1, api_key_id=None, request_id="req_1", endpoint="chat.completions",
                                      status=200, price_per_call_cents=1, served=model(provider), usage=usage))


@pytest.mark.parametrize("provider", WHOLE)
def test_a_null_count_in_an_answer_is_read_as_0_and_the_answer_is_ledgered(provider):
    result = adapter_for(provider).parse(WHOLE[provider], model(provider))
    assert (result.content, result.usage) == ("hi", Usage(5, 0))
    row = row_of(provider, result.usage)
    assert (row["prompt_tokens"], row["completion_tokens"], row["provider_cost_micros"], row["billable"]) == (
        5, 0, Decimal(5), True)


@pytest.mark.parametrize("provider", STREAMED)
def test_a_null_count_in_a_stream_is_read_as_a_missing_one_and_the_answer_is_ledgered(provider):
    chunks, usage = STREAMED[provider]

    async def pairs():
        for event, data in chunks:
            yield event, data.encode() if isinstance(data, str) else orjson.dumps(data)

    async def final():
        return [e async for e in adapter_for(provider).events(pairs(), model(provider)) if isinstance(e, Final)]

    [end] = asyncio.run(final())
    assert end.usage == usage
    row = row_of(provider, end.usage)
    assert (row["prompt_tokens"], row["completion_tokens"], row["provider_cost_micros"]) == (
        usage.prompt_tokens, usage.completion_tokens, Decimal(usage.total_tokens))
