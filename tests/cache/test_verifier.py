"""The second stage (apps.cache.verifier) through the real lookup path: entries written by the
store with the cache's own embeddings, looked up by services.lookup with and without a target
wrong-hit rate. Each refused pair is one the first stage alone serves."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from apps.cache import services, store, verifier
from apps.cache.decision import Candidate
from apps.cache.embedder import embedder
from apps.cache.keys import exact_key
from apps.cache.models import DEFAULT_THRESHOLD
from apps.core import metrics
from tests import factories
from tests.cache.helpers import run

CONTEXT = "verifier-test"
REFUSED = [
    ("could you tell me my name", "could you tell me your name"),                 # person swap
    ("is my card not working", "is my card working"),                             # negation
    ("My card payment did not go through", "My card payment went through"),       # negation
    ("can I have a non virtual card?", "Can i have a virtual card?"),             # negation by prefix
    ("set an alarm for 7 am", "set an alarm for 8 am"),                           # a number
    ("I was charged a 5 dollar fee", "I was charged a 10 dollar fee"),            # an amount
    ("what is on my calendar for friday", "what is on my calendar for saturday"),  # a date
    ("i want the room to be less bright", "i want to bright the room more"),       # the direction (Pair model)
    ("turn down media volume", "turn up media volume"),                            # a direction reversed
    ("enable the smart socket", "disable the smart socket"),                       # a direction reversed
    ("Is 5 greater than 7?", "Is 7 greater than 5?"),                             # two parts exchanged
    ("Convert 10 EUR to USD", "Convert 10 USD to EUR"),                            # two parts exchanged
]
SERVED = [("How can I reset my card PIN?", "How do I reset my card PIN?")]


def plan(tenant_id: int, prompt: str, target: float | None) -> services.Plan:
    return services.Plan(tenant_id=tenant_id, api_key_id="", scope="", context=CONTEXT,
                         exact=exact_key(CONTEXT, "", prompt), prompt=prompt, threshold=DEFAULT_THRESHOLD, target=target,
                         ttl_seconds=3600, tool_calls=False, generation=0)


async def cache(tenant_id: int, prompt: str) -> int:
    return await store.insert(tenant_id=tenant_id, scope="", context_key=CONTEXT,
                              exact_key=exact_key(CONTEXT, "", prompt), api_key_id=None, prompt_text=prompt,
                              vector=embedder().embed([prompt])[0], neighbour_stat=None,
                              response={"content": f"answer to {prompt}", "finish_reason": "stop"}, model="m",
                              ttl=timedelta(hours=1), now=datetime.now(UTC), generation=0)


async def cache_and_ask(tenant_id: int, cached: str, query: str, targets: list[float | None]) -> list[str]:
    """Caches an answer for `cached` (alone in its context: the static rule), then looks up
    `query` at each target; the outcomes."""
    await cache(tenant_id, cached)
    outcomes = []
    for target in targets:
        found = await services.lookup(plan(tenant_id, query, target))
        outcomes.append(found.kind if isinstance(found, services.Hit) else "miss")
    return outcomes


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("query, cached", REFUSED)
def test_the_verifier_refuses_what_the_first_stage_serves(query, cached):
    tenant, _ = factories.make_tenant()
    first_stage_alone, verified = run(cache_and_ask(tenant.pk, cached, query, [None, 0.02]))
    assert (first_stage_alone, verified) == ("semantic", "miss")


@pytest.mark.django_db(transaction=True)
def test_each_lookup_is_counted_as_served_refused_or_missed():
    """aka_cache_lookups_total: refused when the second stage turns down every candidate
    that reached the threshold, a miss when none reached it."""
    tenant, _ = factories.make_tenant()

    def counts():
        return [metrics.CACHE.labels(label)._value.get() for label in ("semantic", "refused", "miss")]

    async def scenario():
        await cache(tenant.pk, "could you tell me your name")
        before, seen = counts(), []
        for query, target in (("could you tell me my name", None), ("could you tell me my name", 0.02),
                              ("what is the weather like in paris", 0.02)):
            await services.lookup(plan(tenant.pk, query, target))
            seen.append([after - was for after, was in zip(counts(), before, strict=True)])
            before = counts()
        return seen

    assert run(scenario()) == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("query, cached", SERVED)
def test_a_true_paraphrase_is_still_served(query, cached):
    tenant, _ = factories.make_tenant()
    assert run(cache_and_ask(tenant.pk, cached, query, [None, 0.01, 0.02])) == ["semantic"] * 3


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("query, refused, served", [
    ("turn down media volume", "turn up media volume", "please turn down media volume"),
    ("could you tell me my name", "could you tell me your name", "could you please tell me my name"),
])
def test_when_the_nearest_answer_is_refused_the_next_one_that_fits_is_served(query, refused, served):
    """The refused entry is nearer to the query than the fitting one, so the first stage
    alone serves the wrong answer; the verifier scores its best few and serves the fitting
    one (before, it refused the nearest and missed). A third, unrelated entry gives the
    context a neighbourhood (with fewer than three entries only the nearest is asked)."""
    tenant, _ = factories.make_tenant()

    async def scenario():
        wrong, right = await cache(tenant.pk, refused), await cache(tenant.pk, served)
        await cache(tenant.pk, "what is the weather like in paris")
        vectors = embedder().embed([query, refused, served])
        assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] > 0.85
        alone, verified = [await services.lookup(plan(tenant.pk, query, target)) for target in (None, 0.01)]
        return wrong, right, alone.entry_id, verified.entry_id

    wrong, right, alone, verified = run(scenario())
    assert (alone, verified) == (wrong, right)


def test_choose_orders_what_is_under_the_cut_off_least_likely_wrong_first_and_asks_nothing_below_the_floor(
        monkeypatch):
    """Which of the first stage's choices may be served, with the model's probabilities set
    by hand: those under the cut-off, least likely wrong first whatever their rank, equals
    in rank order; none when all are at or over it; no scoring at all when the target maps
    to a cut-off of 0."""
    asked = []

    class Fixed:
        def wrong_probabilities(self, query, pairs):
            asked.extend(cached.tokens for cached, *_ in pairs)
            return [{"a": 0.008, "b": 0.003, "c": 0.003, "d": 0.02}[cached.tokens[0]] for cached, *_ in pairs]

    monkeypatch.setattr(verifier, "model", Fixed)
    vector = np.eye(4, dtype=np.float32)[0]
    pool = [Candidate(i, 0.95 - 0.01 * i, np.eye(4, dtype=np.float32)[i % 4], 0.7) for i in range(4)]

    def served(texts, cut):
        monkeypatch.setattr(verifier, "cutoff_for", lambda target: cut)
        choices = [(pool[i], 0.9, text) for i, text in enumerate(texts)]
        return [texts[c.entry_id] for c in verifier.choose("q", choices, vector=vector, candidates=pool, target=0.01)]

    assert served(["a", "b", "c"], 0.01) == ["b", "c", "a"]   # lower-ranked but less likely wrong first
    assert served(["c", "d", "b"], 0.01) == ["c", "b"]
    assert served(["d", "a"], 0.005) == [] and served(["d"], 0.02) == []   # at the cut-off is not under it
    asked.clear()
    assert served(["b", "c"], 0.0) == [] and asked == []


def test_the_pair_model_is_what_refuses_a_pair_the_words_do_not_tell_apart():
    """"less bright" / "bright the room more" is refused at the 2% target because of what the
    Pair model reads from the two embeddings: given the embeddings of a close paraphrase
    instead (everything else the same), the verifier serves it."""
    query, cached = verifier.read("i want the room to be less bright"), verifier.read("i want to bright the room more")
    vectors = embedder().embed(["i want the room to be less bright", "i want to bright the room more",
                                "how do I freeze my card", "how can I freeze my card"])
    cosine = float(vectors[0] @ vectors[1])
    model = verifier.model()
    assert model.wrong_probability(query, cached, (vectors[0], vectors[1]), cosine, cosine, None) >= model.cutoff(0.02)
    assert model.wrong_probability(query, cached, (vectors[2], vectors[3]), cosine, cosine, None) < model.cutoff(0.02)


def test_the_probability_is_the_members_mean():
    query, cached = verifier.read("how do I freeze my card"), verifier.read("how can I freeze my card")
    vectors = tuple(embedder().embed(["how do I freeze my card", "how can I freeze my card"]))
    spec = verifier.model().spec
    alone = [verifier.Model({**spec, "members": [member]}).wrong_probability(query, cached, vectors, 0.97, 0.97, None)
             for member in spec["members"]]
    assert len(set(alone)) > 1   # the members differ, so the mean is not any one of them
    assert verifier.model().wrong_probability(query, cached, vectors, 0.97, 0.97, None) == pytest.approx(
        sum(alone) / len(alone))


def test_the_forest_walks_each_tree_to_its_leaf_for_every_member_and_row():
    """Two members of hand-made trees of unequal depth (a stump and a three-level tree), each
    given its own rows, one of them exactly at a threshold (which goes left), against the
    log-odds worked out by hand."""
    stump = {"feature": [0, -2, -2], "threshold": [0.5, -2.0, -2.0], "left": [1, -1, -1], "right": [2, -1, -1],
             "value": [0.0, -0.1, 0.1]}
    deep = {"feature": [0, 1, -2, 2, -2, -2, -2], "threshold": [0.5, 0.5, -2.0, 0.5, -2.0, -2.0, -2.0],
            "left": [1, 2, -1, 4, -1, -1, -1], "right": [6, 3, -1, 5, -1, -1, -1],
            "value": [0.0, 0.0, 0.1, 0.0, 0.2, 0.3, 0.4]}
    forest = verifier.Forest([{"learning_rate": 0.5, "base": 0.25, "trees": [stump, deep]},
                              {"learning_rate": 1.0, "base": -1.0, "trees": [deep]}])
    first = np.array([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.5, 1.0, 1.0], [1.0, 0.0, 0.0]])
    second = first[::-1]
    # first member, leaves: stump -0.1 -0.1 -0.1 0.1 (0.5 goes left); deep 0.1 0.2 0.3 0.4
    expected = np.array([0.25 + 0.5 * np.array([0.0, 0.1, 0.2, 0.5]),
                         -1.0 + np.array([0.4, 0.3, 0.2, 0.1])])
    probabilities = forest.probabilities(np.stack([first, second]))
    assert np.log(probabilities / (1 - probabilities)) == pytest.approx(expected, abs=1e-12)
    assert forest.depth == 3
    with pytest.raises(ValueError):
        verifier.Forest([{"learning_rate": 0.5, "base": 0.0, "trees": []}, {"learning_rate": 0.5, "base": 0.0,
                                                                             "trees": [stump]}])


def test_several_entries_scored_at_once_score_as_each_alone():
    """What choose() asks: three cached prompts for one query in one pass, a contradiction
    between them, against each scored on its own."""
    texts = ["how do I freeze my card", "how can I freeze my card", "how do I unfreeze my card",
             "how do I not freeze my card"]
    vectors = embedder().embed(texts)
    query, model = verifier.read(texts[0]), verifier.model()
    pairs = [(verifier.read(text), (vectors[0], vector), float(vectors[0] @ vector), float(vectors[0] @ vector), None)
             for text, vector in zip(texts[1:], vectors[1:], strict=True)]
    pairs[1], pairs[2] = pairs[2], pairs[1]   # the contradiction (a negation) in the middle
    together = model.wrong_probabilities(query, pairs)
    assert together[1] == 1.0 and len(set(together)) == 3
    assert together == [pytest.approx(model.wrong_probability(query, *pair), abs=1e-15) for pair in pairs]


def test_contradictions_are_named():
    def reason(a, b):
        return verifier.contradicts(verifier.read(a), verifier.read(b))

    assert reason("please start calling me bob", "i want to start calling you bob") == "person"
    assert reason("I don't want my card", "I want my card") == "negation"
    assert reason("I need a non-contactless card", "I need a contactless card") == "negation"
    assert reason("wake me up at 6", "wake me up at six thirty") == "quantity"
    assert reason("turn on the lamp", "turn the lamp off") == "direction"
    assert reason("set lights brightness higher", "lower brightness of lights") == "direction"
    assert reason("turn off the lights please", "turn the lights off please") is None   # same direction, moved
    assert reason("turn the lights on and off", "turn on the lights") is None   # not reversed: both have "on"
    assert reason("flight from Paris to London", "flight from London to Paris") == "order"
    assert reason("What time is it in Tokyo when it is 9 am in New York?",
                  "What time is it in New York when it is 9 am in Tokyo?") == "order"
    for a, b in [("add eggs and milk to my list", "add milk and eggs to my list"),
                 ("what is the difference between a credit card and a debit card",
                  "what is the difference between a debit card and a credit card"),
                 ("can I pay by card or by cash", "can I pay by cash or by card"),
                 ("compare iphone vs android", "compare android vs iphone")]:
        assert reason(a, b) is None, a   # what "and", "or" and "vs" join has no order
    assert reason("transfer money from savings to checking", "transfer money to checking from savings") is None
    assert reason("I did not set up a direct debit I have", "I have a direct debit I didn't set up") is None
    assert reason("Can you send me a new card?", "I need a new card") is None   # both persons: no swap
    assert reason("my card has not arrived", "my card hasn't arrived") is None


def test_the_target_maps_monotonically_to_strictness():
    model = verifier.model()
    targets = np.linspace(0.001, 0.10, 200)
    cutoffs = [model.cutoff(float(t)) for t in targets]
    assert all(a <= b for a, b in zip(cutoffs, cutoffs[1:], strict=False))
    assert cutoffs[0] < cutoffs[-1]   # the range of targets does change the strictness
    # A lower target accepts a subset of what a higher one accepts.
    rng = np.random.default_rng(0)
    probabilities = rng.uniform(0, 0.2, 2000)
    accepted = [set(np.flatnonzero(probabilities < model.cutoff(t))) for t in (0.005, 0.01, 0.02, 0.05)]
    assert all(a <= b for a, b in zip(accepted, accepted[1:], strict=False))


def test_a_curve_that_is_not_monotonic_is_read_as_its_envelope():
    spec = {**verifier.model().spec, "calibration": {"curve": [[0.1, 0.004], [0.2, 0.012], [0.3, 0.009]]}}
    model = verifier.Model(spec)
    assert [model.cutoff(t) for t in (0.001, 0.005, 0.01, 0.02)] == [0.0, 0.1, 0.1, 0.3]


def test_the_floor_is_the_lowest_target_that_gets_a_cut_off_above_zero():
    spec = {**verifier.model().spec, "calibration": {"curve": [[0.0, 0.002], [0.1, 0.012], [0.2, 0.009]]}}
    model = verifier.Model(spec)
    assert model.floor() == 0.012
    assert model.cutoff(0.012) > 0.0 and model.cutoff(0.0119) == 0.0   # not 0.009, the lowest rate past it
    assert verifier.Model({**spec, "calibration": {"curve": [[0.0, 0.002]]}}).floor() == 1.0   # never serves


def test_the_shipped_model_matches_the_features():
    with pytest.raises(ValueError, match="other features"):
        verifier.Model({**verifier.model().spec, "features": ["cosine"]})



def test_shared_words_carry_their_topics_risk_and_a_word_never_seen_the_prior():
    lexicons = verifier.Lexicons(differing={"cash": 0.3}, topics={"pin": 0.08, "card": 0.02}, prior=0.03)
    around = verifier.Neighbourhood(margin=0.01, coherence=0.6, radius=0.7, rank=0.0)

    def topic(query, cached):
        x = verifier.features(verifier.read(query), verifier.read(cached), 0.95, 0.95, lexicons, around, 0.1)
        return x[verifier.FEATURES.index("topic_max")], x[verifier.FEATURES.index("topic_mean")]

    assert topic("how do I reset my pin", "how can I reset my pin") == pytest.approx((0.08, (0.08 + 2 * 0.03) / 3))
    assert topic("where is my card", "where's my card") == pytest.approx((0.03, 0.025))   # "where" unseen: prior
    # Another domain's words, none of them seen in training: average risk, not none.
    assert topic("turn the radio on", "switch the radio on") == pytest.approx((0.03, 0.03))
    assert topic("hello", "hello there") == pytest.approx((0.03, 0.03))   # no content word in common


def test_the_neighbourhood_says_where_the_chosen_entry_sits_among_the_candidates():
    axes = np.eye(4, dtype=np.float32)
    candidates = [Candidate(1, 0.95, axes[0], 0.7), Candidate(2, 0.93, axes[1], None),
                  Candidate(3, 0.90, (axes[1] + axes[2]) / np.sqrt(2), 0.6)]
    second = verifier.neighbourhood(candidates[1], candidates)
    assert (second.rank, second.radius) == (1.0, -1.0)            # one nearer candidate; no radius stored
    assert second.margin == pytest.approx(0.93 - 0.95)              # not the nearest: negative lead
    assert second.coherence == pytest.approx((0.0 + 1 / np.sqrt(2)) / 2, abs=1e-6)
    first = verifier.neighbourhood(candidates[0], candidates)
    assert (first.rank, first.radius, first.coherence) == (0.0, 0.7, 0.0)
    assert first.margin == pytest.approx(0.02)
    assert verifier.neighbourhood(candidates[0], candidates[:2]) is None   # too few to judge, as the first stage
