"""The routing decision as a function of what the predictor knows: the cheapest model
that keeps the floor, the shift after bad labels, exploration within its bound, and
open circuits skipped."""

import random
from dataclasses import replace
from decimal import Decimal

import pytest

from apps.providers.catalog import ModelInfo
from apps.routing import breaker
from apps.routing.classify import task_of
from apps.routing.predictor import Neighbour
from apps.routing.services import Config, Exploration, decide_with


def model(model_id: str, price: str, tier: str) -> ModelInfo:
    return ModelInfo(id=model_id, provider="openai", upstream_id=model_id, family=model_id, tier=tier,
                     input_per_mtok=Decimal(price), output_per_mtok=Decimal(price) * 4, context_window=128000,
                     max_output_tokens=16384, capabilities=frozenset({"chat"}), fallbacks=())


NANO, MINI, STRONG = model("nano", "0.1", "cheap"), model("mini", "0.15", "cheap"), model("big", "2.5", "strong")
CONFIG = Config(pool=("mini", "big"), aliases={}, allow_substitution=False, quality_floor=0.95, speculation="off",
                buffered_speculation=False, judge="heuristic", judge_threshold=0.5, judge_model="mini", exploration=0.0)
SUPPORT = "Where is my new debit card? It has not arrived yet."
MATH = "Sara has 12 apples and gives 5 to Tom. How many apples does she have left?"


@pytest.fixture(autouse=True)
def closed_circuits():
    breaker._circuits.clear()
    yield
    breaker._circuits.clear()


def decide(prompt, neighbours=(), pool=(MINI, STRONG), config=CONFIG, explorer=None):
    return decide_with(tenant_id=1, config=config, pool=list(pool), task=task_of(prompt), neighbours=list(neighbours),
                       explorer=explorer or Exploration(random.Random(0)))


def test_the_task_classes_of_typical_prompts():
    assert [task_of(p) for p in (SUPPORT, MATH, "Write a short poem about autumn", "Fix this python function",
                                 "Which is a mammal?\nA) shark\nB) whale\nC) trout", "Hello there")] == [
        "support", "math", "writing", "code", "choice", "other"]


def test_the_cheapest_model_that_keeps_the_floor_is_chosen():
    support = decide(SUPPORT)
    assert (support.route, support.model, support.task) == ("cheap", MINI, "support")
    assert support.predicted_quality == pytest.approx(0.92)
    math = decide(MATH)
    assert (math.route, math.model) == ("strong", STRONG)
    # With three models, the cheapest of those that keep the floor: nano is not good enough
    # on this prompt's neighbours, mini is.
    near = [Neighbour("nano", 0.0, 0.95)] * 3 + [Neighbour("mini", 1.0, 0.95)] * 3
    three = decide(SUPPORT, near, pool=(NANO, MINI, STRONG))
    assert (three.route, three.model) == ("cheap", MINI)
    assert decide(SUPPORT, pool=(NANO, MINI, STRONG)).model == NANO


def test_bad_labels_on_similar_prompts_shift_them_to_the_strong_model():
    bad = [Neighbour("mini", 0.0, 0.9), Neighbour("mini", 0.0, 0.85)]
    shifted = decide(SUPPORT, bad)
    assert (shifted.route, shifted.model) == ("strong", STRONG)
    assert shifted.predicted_quality < 0.75
    # Labels on unrelated prompts (similarity under the cut-off) move nothing.
    assert decide(SUPPORT, [Neighbour("mini", 0.0, 0.4)] * 10).model == MINI
    # Good labels bring a math-like kind of prompt to the cheap model.
    good = [Neighbour("mini", 1.0, 0.95)] * 12
    assert decide(MATH, good).model == MINI


def test_exploration_stays_within_its_share():
    explorer = Exploration(random.Random(7))
    config = replace(CONFIG, exploration=0.05)
    routes = [decide(SUPPORT, config=config, explorer=explorer).route for _ in range(2000)]
    explored = routes.count("explore")
    assert 0 < explored <= 0.05 * 2000
    # The share holds at every moment, not only at the end.
    for n in range(1, 2001):
        assert routes[:n].count("explore") <= 0.05 * n
    assert "explore" not in [decide(SUPPORT, explorer=explorer).route for _ in range(500)]  # share 0


def test_an_open_circuit_is_skipped(settings):
    settings.AKA_BREAKER_FAILURES, settings.AKA_BREAKER_COOLDOWN = 3, 60
    for _ in range(2):
        breaker.record("mini", ok=False)
    assert decide(SUPPORT).model == MINI          # two failures: still closed
    breaker.record("mini", ok=False)
    assert breaker.state("mini") == "open"
    skipped = decide(SUPPORT)
    assert (skipped.route, skipped.model) == ("fallback", STRONG)
    assert skipped.reason.startswith("circuit open: mini")


def test_a_circuit_half_opens_after_its_cool_down_and_closes_on_success(settings):
    settings.AKA_BREAKER_FAILURES, settings.AKA_BREAKER_COOLDOWN = 1, 0
    breaker.record("mini", ok=False)
    assert breaker.is_open("mini") is False        # the one half-open probe
    assert breaker.is_open("mini") is True         # the others wait for it
    breaker.record("mini", ok=True)
    assert breaker.state("mini") == "closed" and breaker.is_open("mini") is False
