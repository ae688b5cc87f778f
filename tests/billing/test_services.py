"""Billing's front door: what a call's facts mean in money, including the counterfactual
cost on the tenant's baseline model."""

from decimal import Decimal

import pytest

from apps.billing import services
from apps.billing.services import CallFacts
from apps.core.llm import Usage
from apps.providers.catalog import ModelInfo


def model(model_id: str, input_per_mtok: str, output_per_mtok: str, provider: str = "openai",
          capability: str = "chat") -> ModelInfo:
    return ModelInfo(id=model_id, provider=provider, upstream_id=model_id, family=model_id, tier="cheap",
                     input_per_mtok=Decimal(input_per_mtok), output_per_mtok=Decimal(output_per_mtok),
                     context_window=128_000, max_output_tokens=16_384, capabilities=frozenset({capability}),
                     fallbacks=())


MINI = model("gpt-4o-mini", "0.15", "0.60")
BASELINE = model("gpt-4o", "2.50", "10.00")


def facts(**values) -> CallFacts:
    return CallFacts(**{"tenant_id": 1, "api_key_id": "k", "request_id": "req_1", "endpoint": "chat.completions",
                        "status": 200, "price_per_call_cents": 7, "model_requested": "gpt-4o-mini",
                        "baseline": BASELINE, **values})


def test_a_miss_costs_the_provider_price_and_counts_the_baseline_for_the_same_tokens():
    row = services.ledger_row(facts=facts(served=MINI, usage=Usage(1000, 200), cache="miss"))
    assert (row["billable"], row["price_cents"]) == (True, 7)
    assert row["provider_cost_micros"] == Decimal("270.00")          # 1000 x 0.15 + 200 x 0.60
    assert row["counterfactual_cost_micros"] == Decimal("4500.00")   # 1000 x 2.50 + 200 x 10.00
    assert (row["model_served"], row["provider"], row["baseline_model"]) == ("gpt-4o-mini", "openai", "gpt-4o")


def test_a_cache_hit_costs_nothing_and_saves_the_replayed_answer_on_the_baseline():
    row = services.ledger_row(facts=facts(served=MINI, usage=Usage(1000, 200), cache="semantic",
                                          replayed=Usage(40, 100), cache_entry_id=9, cache_similarity=0.93))
    assert (row["prompt_tokens"], row["completion_tokens"], row["provider_cost_micros"]) == (0, 0, Decimal(0))
    assert row["counterfactual_cost_micros"] == Decimal("1100.00")   # 40 x 2.50 + 100 x 10.00
    assert (row["billable"], row["price_cents"], row["cache_entry_id"]) == (True, 7, 9)


@pytest.mark.parametrize("status, error_type", [(400, "invalid_json"), (429, "rate_limit_exceeded"),
                                                (502, "upstream_error"), (499, "client_closed")])
def test_a_failed_call_is_not_billed_but_keeps_what_the_provider_charged(status, error_type):
    row = services.ledger_row(facts=facts(status=status, error_type=error_type, served=MINI, usage=Usage(1000, 0)))
    assert (row["billable"], row["price_cents"], row["counterfactual_cost_micros"]) == (False, 0, Decimal(0))
    assert row["provider_cost_micros"] == Decimal("150.00")
    assert (row["status_code"], row["error_type"]) == (status, error_type)


def test_a_baseline_missing_from_the_catalog_counts_no_counterfactual():
    row = services.ledger_row(facts=facts(served=MINI, usage=Usage(10, 10), baseline=None))
    assert (row["counterfactual_cost_micros"], row["baseline_model"]) == (Decimal(0), "")


def test_an_embeddings_call_claims_no_saving_against_the_chat_baseline():
    embed = model("text-embedding-3-small", "0.02", "0", capability="embeddings")
    row = services.ledger_row(facts=facts(endpoint="embeddings", model_requested=embed.id, served=embed,
                                          usage=Usage(1000, 0)))
    assert row["provider_cost_micros"] == Decimal("20.00")            # 1000 x 0.02
    assert row["counterfactual_cost_micros"] == Decimal("20.00")      # not 2500 on gpt-4o
    assert row["billable"]


@pytest.mark.django_db(transaction=True)
def test_baseline_model_defaults_to_gpt_4o_and_is_a_tenant_setting(party, settings):
    import asyncio

    from asgiref.sync import sync_to_async
    from django.db import connections

    async def baselines() -> list[str]:
        try:
            return [await services.baseline_model(tenant_id=t.pk) for t in (party.tenant, party.other_tenant)]
        finally:
            await sync_to_async(connections.close_all)()  # the loader's thread must not keep the test database open

    settings.AKA_KEY_CACHE_TTL = 0
    assert asyncio.run(baselines()) == ["gpt-4o", "gpt-4o"]
    services.billing_settings_update(tenant=party.tenant, baseline_model="claude-sonnet-4-5")
    assert asyncio.run(baselines()) == ["claude-sonnet-4-5", "gpt-4o"]
