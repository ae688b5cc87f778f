"""The RouteLLM model pair is in the catalog at its list prices, and the simulator serves it."""

from decimal import Decimal

import pytest

from apps.core.llm import Usage
from apps.providers import catalog
from simulator.profiles import load_profiles

MILLION = Usage(prompt_tokens=1_000_000, completion_tokens=1_000_000)


@pytest.mark.django_db
def test_the_pair_is_priced_as_listed():
    catalog.sync_from_seed()
    models = catalog._load()
    strong, weak = models["gpt-4-1106-preview"], models["mixtral-8x7b-instruct-v0.1"]
    assert (strong.input_per_mtok, strong.output_per_mtok) == (Decimal("10.00"), Decimal("30.00"))
    assert (weak.input_per_mtok, weak.output_per_mtok) == (Decimal("0.60"), Decimal("0.60"))
    assert strong.cost_micros(Usage(prompt_tokens=1000, completion_tokens=200)) == Decimal("16000")  # 1000x10 + 200x30
    assert weak.cost_micros(MILLION) == Decimal("1200000")
    assert (strong.tier, weak.tier) == ("strong", "cheap")


def test_the_simulator_paces_the_pair_with_its_own_profiles():
    profiles = load_profiles()
    strong, weak = profiles["gpt-4-1106-preview"], profiles["mixtral-8x7b-instruct-v0.1"]
    assert strong.ttft_ms > weak.ttft_ms > 0 and weak.tokens_per_s > strong.tokens_per_s > 0
