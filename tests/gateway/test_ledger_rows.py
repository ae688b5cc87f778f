"""One ledger row per call, on every path a call can take, as apps/billing/services.py
writes it: billable or not, the plan's price (Starter: 10 cents), what the provider
charged, and the counterfactual cost on the tenant's baseline model (gpt-4o unless set)."""

import asyncio
import time
from decimal import Decimal

import httpx
import openai
import pytest

from apps.billing.services import billing_settings_update
from apps.core.llm import Usage
from apps.providers.catalog import amodels
from apps.tenants.models import Tenant
from tests.cache.test_cache_gateway import entries

PIN, PIN_PARAPHRASE = "How do I reset my card PIN?", "How can I reset my card PIN?"
MINI = (Decimal("0.15"), Decimal("0.60"))     # gpt-4o-mini, USD per 1M tokens (the seeded catalog)
GPT_4O = (Decimal("2.50"), Decimal("10.00"))
HAIKU = (Decimal("1.00"), Decimal("5.00"))


def cost(prices, prompt_tokens: int, completion_tokens: int) -> Decimal:
    return prompt_tokens * prices[0] + completion_tokens * prices[1]


def client(live, **headers) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live.url}/v1", api_key=live.raw_key, max_retries=0, default_headers=headers)


def ask(live, content: str, **kw):
    headers = kw.pop("headers", {"x-aka-cache": "off"})
    return client(live, **headers).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": content}], **kw)


def assert_billed_miss(row, prices=MINI, model="gpt-4o-mini"):
    assert (row.status_code, row.billable, row.price_cents, row.error_type) == (200, True, 10, "")
    assert (row.model_served, row.baseline_model) == (model, "gpt-4o")
    assert row.prompt_tokens > 0 and row.completion_tokens > 0
    assert row.provider_cost_micros == cost(prices, row.prompt_tokens, row.completion_tokens)
    assert row.counterfactual_cost_micros == cost(GPT_4O, row.prompt_tokens, row.completion_tokens)


def test_a_miss(live):
    response = ask(live, "What are the card fees?")
    [row] = live.records()
    assert (row.request_id, row.cache, row.stream) == (response.headers["x-request-id"], "off", False)
    assert_billed_miss(row)
    assert Decimal(response.headers["x-aka-cost-usd"]) * 1_000_000 == row.provider_cost_micros
    assert int(response.headers["content-length"]) == len(response.http_response.content)


def test_an_exact_hit_costs_nothing_and_saves_the_whole_baseline_cost(live):
    cached = {"x-aka-cache": "on"}
    ask(live, PIN, headers=cached)
    live.records()
    ask(live, PIN, headers=cached)
    miss, hit = live.records(expected=2)
    assert_billed_miss(miss)
    assert (hit.cache, hit.billable, hit.price_cents, hit.model_served) == ("exact", True, 10, "gpt-4o-mini")
    assert (hit.prompt_tokens, hit.completion_tokens, hit.provider_cost_micros) == (0, 0, 0)
    assert hit.counterfactual_cost_micros == miss.counterfactual_cost_micros


def test_a_semantic_hit(live):
    cached = {"x-aka-cache": "on"}
    ask(live, PIN, headers=cached)
    live.records()
    entries(live)
    assert ask(live, PIN_PARAPHRASE, headers=cached).headers["x-aka-cache"] == "semantic"
    miss, hit = live.records(expected=2)
    assert (hit.cache, hit.billable, hit.provider_cost_micros) == ("semantic", True, 0)
    assert hit.counterfactual_cost_micros == miss.counterfactual_cost_micros > 0


def test_a_stream(live):
    with client(live, **{"x-aka-cache": "off"}).chat.completions.create(
            model="gpt-4o-mini", stream=True, stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "Explain card fees."}]) as stream:
        usage = [chunk.usage for chunk in stream if chunk.usage][0]
    [row] = live.records()
    assert row.stream and (row.prompt_tokens, row.completion_tokens) == (usage.prompt_tokens, usage.completion_tokens)
    assert row.ttft_ms is not None and row.ttft_ms <= row.latency_ms
    assert_billed_miss(row)


def test_a_stream_cut_by_the_client_is_not_billed(live):
    body = {"model": "gpt-4o-mini", "stream": True, "max_tokens": 400,
            "messages": [{"role": "user", "content": "Tell me a long story about fees. [[pace:ttft=0 tps=5]]"}]}
    with httpx.Client(base_url=live.url, timeout=5) as http:
        with http.stream("POST", "/v1/chat/completions", json=body,
                         headers={"authorization": f"Bearer {live.raw_key}", "x-aka-cache": "off"}) as response:
            next(response.iter_raw())  # the first event, then the client hangs up
    [row] = live.records(timeout=5)
    assert (row.status_code, row.error_type, row.billable, row.price_cents) == (499, "client_closed", False, 0)
    assert row.counterfactual_cost_micros == 0
    # Not billed, but the provider charged us for the input and what it sent before we closed it.
    assert row.prompt_tokens > 0 and row.completion_tokens >= 1
    assert row.provider_cost_micros == asyncio.run(amodels())["gpt-4o-mini"].cost_micros(
        Usage(row.prompt_tokens, row.completion_tokens)) > 0


def test_an_upstream_error_is_not_billed(live):
    with pytest.raises(openai.InternalServerError):
        ask(live, "fees? [[fault:500]]")
    [row] = live.records()
    assert (row.status_code, row.error_type, row.billable, row.price_cents) == (502, "upstream_error", False, 0)
    assert (row.provider_cost_micros, row.counterfactual_cost_micros) == (0, 0)
    assert row.attempts == 9  # three models of the chain, each tried three times


def test_a_fallback_is_billed_at_the_model_that_answered(live):
    ask(live, "fees? [[fault:500 model=gpt-4o-mini]]")
    [row] = live.records()
    assert_billed_miss(row, prices=HAIKU, model="claude-haiku-4-5")
    assert row.attempts == 4


def test_a_429_is_not_billed(live):
    Tenant.objects.filter(pk=live.tenant.pk).update(key_rate_limit_rpm=1)
    ask(live, "first")
    with pytest.raises(openai.RateLimitError):
        ask(live, "second")
    first, refused = live.records(expected=2)
    assert_billed_miss(first)
    assert (refused.status_code, refused.error_type, refused.billable, refused.price_cents) == (
        429, "rate_limit_exceeded", False, 0)
    assert (refused.provider_cost_micros, refused.counterfactual_cost_micros) == (0, 0)


def test_the_baseline_model_is_a_tenant_setting(live):
    billing_settings_update(tenant=live.tenant, baseline_model="claude-haiku-4-5")
    time.sleep(0.6)  # the gateway's snapshot of the setting lives AKA_KEY_CACHE_TTL (0.5 s in tests)
    ask(live, "What are the card fees?")
    [row] = live.records()
    assert row.baseline_model == "claude-haiku-4-5"
    assert row.counterfactual_cost_micros == cost(HAIKU, row.prompt_tokens, row.completion_tokens)
