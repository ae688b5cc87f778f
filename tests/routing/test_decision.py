"""The routing decision as a function of what the predictor knows: the cheapest model
that keeps the floor, the floor held on average, the shift after bad labels, exploration
within its bound, the predictor deciding whether a speculation drafts at all, what a
judge's verdict teaches, and open circuits skipped."""

import asyncio
import random
import types
from dataclasses import replace
from decimal import Decimal

import pytest

from apps.cache.embedder import embedder
from apps.core.llm import ChatRequest, ChatResult, Usage
from apps.providers import dispatch
from apps.providers.catalog import ModelInfo
from apps.providers.errors import UpstreamError
from apps.routing import breaker
from apps.routing.classify import task_of
from apps.routing.judges import HeuristicJudge, Verdict, after_verdict
from apps.routing.predictor import Neighbour, priors
from apps.routing.services import Config, Exploration, QualityBudget, chain_for, decide_with, judge_label
from apps.routing.speculation import plan_for


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


def decide(prompt, neighbours=(), pool=(MINI, STRONG), config=CONFIG, explorer=None, spent=None, tokens=0,
           speculating=True):
    return decide_with(tenant_id=1, config=config, pool=list(pool), task=task_of(prompt), neighbours=list(neighbours),
                       prompt_tokens=tokens, explorer=explorer or Exploration(random.Random(0)),
                       spent=spent or QualityBudget(), speculating=speculating)


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


@pytest.fixture
def clock(settings, monkeypatch):
    """Circuits open after one failure for 30 s, on a clock the test moves."""
    settings.AKA_BREAKER_FAILURES, settings.AKA_BREAKER_COOLDOWN = 1, 30
    now = [1000.0]
    # The breaker's clock only: asyncio's own keeps running, so timed sleeps still wake.
    monkeypatch.setattr(breaker, "time", types.SimpleNamespace(monotonic=lambda: now[0]))
    return now


def test_a_circuit_half_opens_after_its_cool_down_and_closes_on_success(clock):
    breaker.record("mini", ok=False)
    assert breaker.is_open("mini") is True         # cooling down: routes skip it
    # Tried anyway only by a route with every model open: that takes no probe (one taken
    # here, a second before the cool-down ends, would still be out after it).
    clock[0] += 29
    assert breaker.Probes().take("mini") is True
    clock[0] += 1
    assert breaker.is_open("mini") is False        # half open: one call may try it
    assert breaker.Probes().take("mini") is True   # the call that tries it takes the probe
    assert breaker.is_open("mini") is True and breaker.Probes().take("mini") is False  # the others wait for it
    breaker.record("mini", ok=True)
    assert breaker.state("mini") == "closed" and breaker.is_open("mini") is False


def test_a_probe_that_never_reports_goes_to_the_next_caller_after_a_cool_down(clock):
    """A call that took the probe was cancelled: nothing reported on it, and the circuit
    would have stayed open for good."""
    breaker.record("mini", ok=False)
    clock[0] += 30
    assert breaker.Probes().take("mini") is True   # taken, never reported on
    clock[0] += 29
    assert breaker.is_open("mini") is True and breaker.Probes().take("mini") is False
    clock[0] += 1
    assert breaker.is_open("mini") is False and breaker.Probes().take("mini") is True   # the next caller's probe
    breaker.record("mini", ok=False)
    assert breaker.is_open("mini") is True         # a failed probe reopens it for a whole cool-down


def test_a_half_open_model_looked_at_but_not_called_keeps_its_probe(clock):
    """The router filters by circuit its pool, the chosen model's fallbacks and the strong
    model's fallbacks on every call: each look took the half-open probe, and a model
    filtered but not called kept its circuit open for one more cool-down."""
    breaker.record("mini", ok=False)
    clock[0] += 30
    strong = replace(STRONG, fallbacks=("mini",))
    catalog, cascade = {"mini": MINI, "big": strong}, replace(CONFIG, speculation="cascade")
    made = decide(MATH, pool=(MINI, strong), config=cascade)   # mini looked at, big chosen
    assert (made.route, made.model) == ("strong", strong)
    assert chain_for(made, catalog, set()) == [strong, MINI]   # a fallback, needed only if big fails
    plan = plan_for(config=cascade, decision=made, judge=HeuristicJudge(), needs=frozenset(), catalog=catalog)
    assert plan.strong_chain == [strong, MINI]
    # Still half open with its probe untaken: the next call is routed there, and tries it.
    support = decide(SUPPORT)
    assert (support.route, support.model) == ("cheap", MINI)
    assert breaker.Probes().take("mini") is True
    # One call at a time: the others route around it until the probe reports.
    routed = decide(SUPPORT)
    assert (routed.route, routed.model) == ("fallback", STRONG)


def test_one_routed_call_at_a_time_tries_a_half_open_model(clock, monkeypatch):
    """Two calls routed to a half-open model at once (both looked before either tried it):
    the first to try it takes the probe, the other goes to its fallback; a call whose every
    model is refused tries them anyway, as a route whose whole pool is open does."""
    breaker.record("mini", ok=False)
    clock[0] += 30
    asked = []

    class Upstream:
        async def complete(self, req, model):
            asked.append(model.id)
            await asyncio.sleep(0)   # both calls under way at once
            return ChatResult(id="x", model=model.id, content="ok", finish_reason="stop", usage=Usage(1, 1))

    monkeypatch.setattr(dispatch, "adapter_for", lambda provider: Upstream())

    async def calls():
        chain = [MINI, NANO]   # mini, then its fallback
        routed = [dispatch.Outcome(), dispatch.Outcome()]
        answers = await asyncio.gather(*(dispatch.complete(ask(SUPPORT), chain, outcome, circuits=breaker.Probes())
                                         for outcome in routed))
        alone = dispatch.Outcome()
        refused_all = await dispatch.complete(ask(SUPPORT), [MINI], alone, circuits=breaker.Probes())
        named = await dispatch.complete(ask(SUPPORT), [MINI], dispatch.Outcome())   # no circuit asked
        return [a.model for a in answers], [o.attempts for o in routed], (refused_all.model, alone.attempts), named.model

    served, attempts, refused_all, named = asyncio.run(calls())
    assert (served, attempts) == (["mini", "nano"], [1, 1])
    assert refused_all == ("mini", 1)
    assert named == "mini" and asked == ["mini", "nano", "mini", "mini"]


def test_a_routed_call_cancelled_before_its_probe_answered_gives_the_probe_back(clock, settings, monkeypatch):
    """A call tries the half-open model (the probe) and is cancelled before it answers or
    fails (a race decided the other way, the client gone): nothing was learnt of the model,
    so the next call may probe it at once. A call cancelled while retrying after a failed
    attempt keeps it: that failure reports, and reopens the circuit."""
    settings.AKA_RETRY_BASE_DELAY = 0
    breaker.record("mini", ok=False)
    clock[0] += 30
    failures = []

    class Upstream:
        asked: asyncio.Event

        async def complete(self, req, model):
            if failures:
                raise failures.pop()
            self.asked.set()
            await asyncio.Event().wait()   # no answer until cancelled

    upstream = Upstream()
    monkeypatch.setattr(dispatch, "adapter_for", lambda provider: upstream)

    async def cancelled_while_trying(outcome):
        upstream.asked = asyncio.Event()
        call = asyncio.ensure_future(dispatch.complete(ask(SUPPORT), [MINI], outcome, circuits=breaker.Probes()))
        await upstream.asked.wait()
        probe_out = breaker.is_open("mini")
        call.cancel()
        await asyncio.gather(call, return_exceptions=True)
        return probe_out

    first = dispatch.Outcome()
    assert asyncio.run(cancelled_while_trying(first)) is True
    assert (first.attempts, first.failed) == (1, [])
    assert breaker.is_open("mini") is False and breaker.state("mini") == "half_open"
    failures.append(UpstreamError(502, "upstream failed", retryable=True, upstream_status=500))
    retried = dispatch.Outcome()
    assert asyncio.run(cancelled_while_trying(retried)) is True
    assert (retried.attempts, retried.failed) == (2, ["mini"])
    assert breaker.is_open("mini") is True   # a retry after a failure keeps the probe: that failure reports


def test_a_probe_is_given_back_once_and_only_while_it_is_still_out(clock):
    """A call's give-back frees its own probe; never another call's taken since, nor one
    taken after its circuit reopened."""
    breaker.record("mini", ok=False)
    clock[0] += 30
    first, second = breaker.Probes(), breaker.Probes()
    assert first.take("mini") is True
    first.give_back("mini")
    assert second.take("mini") is True            # the next call probes at once
    first.give_back("mini")                        # twice: the second call's probe stays out
    assert breaker.is_open("mini") is True and breaker.Probes().take("mini") is False
    clock[0] += 30                                 # the second's probe went unreported for a cool-down
    third = breaker.Probes()
    assert third.take("mini") is True
    second.give_back("mini")                       # late: the third's probe stays out
    assert breaker.is_open("mini") is True
    breaker.record("mini", ok=False)               # another call's failure reopens the circuit
    clock[0] += 30
    fourth = breaker.Probes()
    assert fourth.take("mini") is True
    third.give_back("mini")                        # its circuit reopened since: the fourth's probe stays out
    assert breaker.is_open("mini") is True


def test_the_floor_holds_on_average_spent_where_the_cheap_model_loses_least():
    spent = QualityBudget()
    # Alone, a math prompt (cheap 0.65, strong 0.85: 24% lost) goes to the strong model,
    # and a support prompt (2% lost) to the cheap one.
    assert decide(MATH, spent=spent).route == "strong"
    # Strong answers lose nothing, so the allowance grows until a math prompt may go cheap;
    # over many calls the predicted loss averages 1 - floor.
    routes = [decide(MATH, spent=spent).route for _ in range(2000)]
    lost = routes.count("cheap") * (1 - 0.65 / 0.85) / len(routes)
    assert 0.045 <= lost <= 0.055
    # With support prompts in the mix, those (the cheapest loss) take the cheap model every time.
    mixed = [(p, decide(p, spent=spent).route) for p in [SUPPORT, MATH] * 500]
    assert {route for p, route in mixed if p == SUPPORT} == {"cheap"}


def test_a_call_whose_draft_no_judge_can_judge_is_decided_and_spent_as_without_speculation():
    """The judge unreachable (an LLM judge whose every circuit is open), no draft is made:
    the cheap model answers unjudged, and the quality budget must be spent for that, not
    for a judged draft's much smaller loss (which let the allowance climb call by call)."""
    cascade = replace(CONFIG, speculation="cascade")
    judged, unjudged, off = QualityBudget(), QualityBudget(), QualityBudget()
    assert decide(SUPPORT, config=cascade, spent=judged).draft == "confident"
    down = decide(SUPPORT, config=cascade, spent=unjudged, speculating=False)
    assert (down.route, down.draft) == ("cheap", "skip")
    decide(SUPPORT, spent=off)
    assert unjudged.allowance(1, 0.95) == off.allowance(1, 0.95) < judged.allowance(1, 0.95)


def test_cheap_answers_worse_than_predicted_move_later_calls_to_the_strong_model():
    spent = QualityBudget()
    assert decide(SUPPORT, spent=spent).route == "cheap"       # predicted 0.92 of 0.94
    # Four verdicts are too few to act on; five that fall short by 0.12 on average are not.
    for good in (0, 1, 1, 1):
        spent.observed(1, predicted=0.92, good=good)
    assert spent.optimism(1) == 0 and decide(SUPPORT, spent=spent).route == "cheap"
    spent.observed(1, predicted=0.92, good=1)
    assert spent.optimism(1) == pytest.approx(0.12)
    shifted = decide(SUPPORT, spent=spent)
    assert shifted.route == "strong"
    # The prediction itself is kept as the predictor made it (the ledger's, for the next verdicts).
    assert shifted.predicted_quality == pytest.approx(0.92)
    # Another tenant's verdicts change nothing here, and answers better than predicted never loosen.
    better = QualityBudget()
    for _ in range(10):
        better.observed(1, predicted=0.5, good=1)
        spent.observed(2, predicted=0.9, good=0)
    assert better.optimism(1) == 0
    assert spent.optimism(1) == pytest.approx(0.12)


def test_a_call_that_saves_more_may_lose_more():
    spent = QualityBudget()
    # Short math prompts (24% of the strong quality lost on the cheap model) go strong...
    assert [decide(MATH, spent=spent, tokens=20).route for _ in range(3)] == ["strong"] * 3
    # ...a prompt twenty times their size saves twenty times as much on the cheap model: the
    # allowance, spent where a loss buys the most, covers its loss.
    long = decide(MATH, spent=spent, tokens=400)
    assert long.route == "cheap" and long.reason.endswith("50% loss allowed")
    # A call of unknown size gets the allowance as it stands (lowered by that cheap answer).
    assert decide(MATH, spent=spent).route == "strong"


CODE = "Fix the bug in this python function: def add(a, b): return a - b"


def test_the_predictor_decides_whether_a_speculation_drafts():
    cascade = replace(CONFIG, speculation="cascade")
    assert decide(SUPPORT, config=cascade).draft == "confident"
    # A math prompt misses the floor as it stands (cheap 0.65, strong 0.85), but the math
    # judge, at the pass mark the floor sets (0.85 x 0.95), lets few wrong answers through:
    # a judged draft keeps the floor.
    math = decide(MATH, config=cascade)
    assert (math.route, math.draft, math.judge_threshold) == ("strong", "at_risk", round(0.85 * 0.95, 4))
    # A coding prompt (cheap 0.70, strong 0.88) with a judge that sees less: not worth a
    # draft at a 5% allowance, worth one at 15%.
    roomier = QualityBudget()
    roomier.allowances[1] = 0.15
    assert (decide(CODE, config=cascade).draft, decide(CODE, config=cascade, spent=roomier).draft) == (
        "skip", "at_risk")
    assert decide(CODE, spent=QualityBudget()).draft == "skip"    # no speculation: nothing drafts
    # Bad labels on the cheap model's answers to close prompts: not even worth a draft.
    bad = [Neighbour("mini", 0.0, 0.95)] * 6
    assert decide(MATH, bad, config=cascade).draft == "skip"
    # A multiple-choice letter shows the judge nothing: a risky one is never drafted.
    choice = "Which is a mammal?\nA) shark\nB) whale\nC) trout"
    assert decide(choice, [Neighbour("mini", 0.0, 0.9)] * 2, config=cascade, spent=roomier).draft == "skip"


def ask(prompt):
    return ChatRequest(model="auto", messages=[{"role": "user", "content": prompt}])


@pytest.mark.parametrize("mode, draft, run", [
    ("cascade", "confident", "cascade"), ("cascade", "at_risk", "cascade"), ("cascade", "skip", None),
    ("race", "confident", "race"), ("race", "skip", None),
    ("selective", "confident", "cascade"), ("selective", "at_risk", "race"), ("selective", "skip", None),
])
def test_each_mode_speculates_only_on_calls_the_predictor_lets_draft(mode, draft, run):
    made = decide(MATH, config=replace(CONFIG, speculation=mode))
    plan = plan_for(config=replace(CONFIG, speculation=mode), decision=replace(made, draft=draft),
                    judge=HeuristicJudge(), needs=frozenset(), catalog={"mini": MINI, "big": STRONG})
    assert (plan.run if plan else None) == run
    if plan:
        assert (plan.draft, plan.strong_chain) == (MINI, [STRONG])


def test_the_strong_models_fallbacks_serve_what_the_request_needs():
    """A JSON request's strong call never falls back to a model without JSON mode."""
    made = decide(MATH, config=replace(CONFIG, speculation="cascade"))
    strong = replace(STRONG, fallbacks=("plain", "json"))
    plain = replace(STRONG, id="plain", capabilities=frozenset({"chat"}))
    json_too = replace(STRONG, id="json", capabilities=frozenset({"chat", "json"}))
    catalog = {"mini": MINI, "big": strong, "plain": plain, "json": json_too}
    wanting_json = replace(ask(MATH), response_format={"type": "json_object"})
    plan = plan_for(config=replace(CONFIG, speculation="cascade"), decision=replace(made, strong=strong),
                    judge=HeuristicJudge(), needs=wanting_json.needs(), catalog=catalog)
    assert [m.id for m in plan.strong_chain] == ["big", "json"]


def test_a_judges_verdict_labels_the_cheap_model_by_what_it_shows():
    support = decide(SUPPORT, config=replace(CONFIG, speculation="cascade"))
    passed, cut = Verdict("heuristic", 1.0, True, "ok"), Verdict("heuristic", 0.05, False, "finish_reason=length")
    assert judge_label(support, passed) == round(after_verdict(0.92, "support", True, support.judge_threshold), 4)
    assert support.predicted_quality < judge_label(support, passed) < 1.0   # weaker than a client's thumbs up
    assert judge_label(support, cut) == 0.05
    # A multiple-choice letter passes whatever it says: no label.
    choice = decide("Which is a mammal?\nA) shark\nB) whale\nC) trout")
    assert judge_label(choice, passed) is None
    # A judge that could not judge (unreachable, no score) rejects the draft but teaches nothing:
    # its score 0 was stored as a label that the draft was bad.
    assert judge_label(support, Verdict("llm", 0.0, False, "judge unavailable: down", judged=False)) is None


def test_a_multiple_choice_question_takes_its_likely_subjects_rates():
    question = ("Which organelle of a eukaryotic cell produces most of its ATP through oxidative phosphorylation?\n"
                "A. Ribosome\nB. Mitochondrion\nC. Golgi apparatus\nD. Lysosome\nAnswer:")
    cheap, strong, subject = priors(task_of(question), embedder().embed([question])[0])
    assert subject in ("high_school_biology", "college_biology", "medical_genetics", "anatomy")
    assert cheap < strong
    # Subjects far apart get far-apart rates, not one flat blend of all of them.
    algebra = "Find the order of the factor group Z_6/<3>.\nA. 2\nB. 3\nC. 6\nD. 12\nAnswer:"
    algebra_cheap, _, algebra_subject = priors(task_of(algebra), embedder().embed([algebra])[0])
    assert algebra_subject == "abstract_algebra" and cheap - algebra_cheap > 0.2
    assert priors(task_of(question), None) == (0.68, 0.80, "choice")   # no embedding: the task class's rates
