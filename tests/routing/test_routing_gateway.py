"""Routed calls through the real gateway and simulator: the route and its reasons on the
response and in the ledger, the shift after negative feedback, cascade speculation
calling the strong model only when the judge rejects the draft (and drafting only when
the predictor lets it), a cascade whose strong model fails still recording what it spent,
and labels reaching the model they describe."""

import asyncio
import time
from decimal import Decimal

import httpx
import openai
import orjson
import pytest

from apps.cache.services import cache_settings_update
from apps.core.llm import Usage
from apps.providers.catalog import amodels
from apps.routing import breaker, services
from apps.routing.judges import after_verdict
from apps.routing.models import RoutingSample
from apps.routing.services import routing_settings_update
from tests.gateway.inprocess import half_open, routed_in_process, through_handler

CHEAP, STRONG = "gpt-4.1-nano", "gpt-4.1"   # models no other test faults, so no circuit is open
SUPPORT = "Where is my new debit card? I ordered it two weeks ago."
SUPPORT_AGAIN = "My new debit card still has not arrived, where is it?"
SUPPORT_THIRD = "I ordered a debit card weeks ago and it is not here yet. Where is my card?"
MATH = "Sara has 12 apples and gives 5 to Tom. How many apples does she have left?"


def sdk(live) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live.url}/v1", api_key=live.raw_key, max_retries=0)


def ask(live, content, **kw):
    return sdk(live).chat.completions.with_raw_response.create(
        model=kw.pop("model", "auto"), messages=[{"role": "user", "content": content}], **kw)


def stats(simulator) -> dict:
    return httpx.get(f"{simulator}/_sim/stats").json()


def settle(live, tenant, cache: bool = False, **changes) -> None:
    """The tenant routes between CHEAP and STRONG without exploring; without the cache
    unless asked (a paraphrase would be a cache hit, never routed)."""
    routing_settings_update(tenant=tenant, pool=[CHEAP, STRONG], exploration=0.0, **changes)
    if not cache:
        cache_settings_update(tenant=tenant, changes={"enabled": False})


def samples(live, expected: int, timeout: float = 3.0) -> list[RoutingSample]:
    deadline = time.monotonic() + timeout
    while True:
        found = list(RoutingSample.objects.for_tenant(live.tenant).order_by("id"))
        if len(found) >= expected or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def thumbs(live, answered, verdict: str) -> httpx.Response:
    return httpx.post(f"{live.url}/v1/feedback", headers={"authorization": f"Bearer {live.raw_key}"},
                      json={"request_id": answered.headers["x-request-id"], "thumbs": verdict})


def test_auto_goes_to_the_cheapest_adequate_model_and_says_why(live, sim):
    settle(live, live.tenant, cache=True)   # the router reuses the cache's embedding
    support = ask(live, SUPPORT)
    math = ask(live, MATH)
    marbles = [{"role": "user", "content": "Tom has 30 marbles and loses 4. How many are left?"}]
    with sdk(live).chat.completions.with_streaming_response.create(model="auto", stream=True,
                                                                   messages=marbles) as streamed:
        assert (streamed.headers["x-aka-route"], streamed.headers["x-aka-model"]) == ("strong", STRONG)
        assert "data: [DONE]" in streamed.text()

    assert (support.headers["x-aka-route"], support.headers["x-aka-model"]) == ("cheap", CHEAP)
    assert (math.headers["x-aka-route"], math.headers["x-aka-model"]) == ("strong", STRONG)
    rows = live.records(expected=3)
    assert [(r.model_requested, r.model_served, r.route, r.speculation) for r in rows] == [
        ("auto", CHEAP, "cheap", ""), ("auto", STRONG, "strong", ""), ("auto", STRONG, "strong", "")]
    assert rows[0].route_reason.startswith("support:") and rows[1].route_reason.startswith("math:")
    assert (rows[0].predicted_quality, rows[1].predicted_quality) == (0.92, 0.65)
    assert all(r.provider_cost_micros > 0 and r.billable for r in rows)
    assert stats(sim)["requests"] == {CHEAP: 1, STRONG: 2}


def test_a_named_model_is_routed_only_when_the_tenant_allows_substitution(live, sim):
    settle(live, live.tenant)
    direct = ask(live, SUPPORT, model=STRONG)
    assert direct.headers["x-aka-model"] == STRONG and "x-aka-route" not in direct.headers
    routing_settings_update(tenant=live.tenant, allow_substitution=True,
                            aliases={"aka:support": [CHEAP, STRONG]})
    time.sleep(0.6)  # the gateway's settings snapshot lives AKA_KEY_CACHE_TTL (0.5 s in tests)
    substituted = ask(live, SUPPORT_AGAIN, model=STRONG)
    aliased = ask(live, SUPPORT_THIRD, model="aka:support")
    assert (substituted.headers["x-aka-route"], substituted.headers["x-aka-model"]) == ("cheap", CHEAP)
    assert (aliased.headers["x-aka-route"], aliased.headers["x-aka-model"]) == ("cheap", CHEAP)


def test_a_named_model_is_never_served_the_answer_another_model_gave_when_it_was_routed(live, sim):
    """Routed under substitution, a call naming STRONG is answered by CHEAP; with
    substitution off, the same call must get STRONG, not CHEAP's cached answer (the name
    asked equals STRONG's family)."""
    settle(live, live.tenant, cache=True, allow_substitution=True)
    assert ask(live, SUPPORT, model=STRONG).headers["x-aka-model"] == CHEAP
    live.records()
    routing_settings_update(tenant=live.tenant, allow_substitution=False)
    time.sleep(0.6)
    again = ask(live, SUPPORT, model=STRONG)
    assert (again.headers["x-aka-cache"], again.headers["x-aka-model"]) == ("miss", STRONG)


def test_negative_feedback_on_the_cheap_model_shifts_similar_prompts_to_the_strong_one(live, sim):
    settle(live, live.tenant)   # no cache: the router embeds the prompt itself
    first, second = ask(live, SUPPORT), ask(live, SUPPORT_AGAIN)
    assert [first.headers["x-aka-model"], second.headers["x-aka-model"]] == [CHEAP, CHEAP]
    live.records(expected=2)
    assert [s.good for s in samples(live, 2)] == [None, None]

    for answered in (first, second):
        assert thumbs(live, answered, "down").status_code == 200
    assert [(s.model, s.good, s.label_source) for s in samples(live, 2)] == [(CHEAP, 0.0, "feedback")] * 2

    shifted = ask(live, SUPPORT_THIRD)
    unrelated = ask(live, "How do I change the PIN of my credit card?")
    assert (shifted.headers["x-aka-route"], shifted.headers["x-aka-model"]) == ("strong", STRONG)
    assert unrelated.headers["x-aka-model"] == CHEAP      # only the kind of prompt that was judged
    rows = live.records(expected=4)
    assert rows[2].route == "strong" and rows[2].predicted_quality < 0.8


def test_cascade_serves_an_accepted_draft_without_calling_the_strong_model(live, sim):
    settle(live, live.tenant, speculation="cascade")
    answer = ask(live, SUPPORT)
    assert (answer.headers["x-aka-model"], answer.headers["x-aka-speculation"]) == (CHEAP, "cascade:accepted")
    assert stats(sim)["requests"] == {CHEAP: 1}
    [row] = live.records()
    assert (row.speculation, row.speculation_outcome, row.judge, row.judge_score) == (
        "cascade", "accepted", "heuristic", 1.0)
    assert row.draft_cost_micros > 0 and row.strong_cost_micros == row.judge_cost_micros == 0
    assert row.provider_cost_micros == row.draft_cost_micros
    assert Decimal(answer.headers["x-aka-cost-usd"]) * 1_000_000 == row.provider_cost_micros
    [sample] = samples(live, 1)
    # The judge's pass is a label for the cheap model, weaker than the client's thumbs up.
    assert (sample.model, sample.good, sample.label_source) == (
        CHEAP, round(after_verdict(0.92, "support", True, 0.5), 4), "judge")
    # The client's verdict on the served draft replaces it: a label of the cheap model too.
    assert thumbs(live, answer, "down").status_code == 200
    assert [(s.model, s.good, s.label_source) for s in samples(live, 1)] == [(CHEAP, 0.0, "feedback")]


def test_cascade_goes_straight_to_the_strong_model_when_not_even_a_judged_draft_would_do(live, sim):
    settle(live, live.tenant, speculation="cascade")
    # A coding prompt: cheap 0.70 against strong 0.88, and a pass of the judge would not make up for it.
    answer = ask(live, "Fix the bug in this python function: def add(a, b): return a - b")
    assert answer.headers["x-aka-model"] == STRONG and "x-aka-speculation" not in answer.headers
    assert stats(sim)["requests"] == {STRONG: 1}   # no draft paid for or waited on
    [row] = live.records()
    assert (row.route, row.speculation, row.draft_cost_micros) == ("strong", "", 0)


def test_cascade_calls_the_strong_model_when_the_judge_rejects_the_draft(live, sim):
    settle(live, live.tenant, speculation="cascade")
    answer = ask(live, SUPPORT, max_tokens=5)   # the draft is cut: finish_reason=length
    assert (answer.headers["x-aka-model"], answer.headers["x-aka-speculation"]) == (STRONG, "cascade:rejected")
    assert stats(sim)["requests"] == {CHEAP: 1, STRONG: 1}
    [row] = live.records()
    assert (row.model_served, row.speculation_outcome, row.judge_score) == (STRONG, "rejected", 0.05)
    assert row.draft_cost_micros > 0 and row.strong_cost_micros > 0
    assert row.provider_cost_micros == row.draft_cost_micros + row.strong_cost_micros
    assert (row.completion_tokens, row.billable) == (5, True)
    assert {(s.model, s.good) for s in samples(live, 2)} == {(CHEAP, 0.05), (STRONG, None)}
    # Feedback on the strong model's answer labels the strong model, not the rejected draft.
    assert thumbs(live, answer, "up").status_code == 200
    assert {(s.model, s.good, s.label_source) for s in samples(live, 2)} == {
        (CHEAP, 0.05, "judge"), (STRONG, 1.0, "feedback")}


def test_streaming_clients_get_the_routed_stream_at_once_unless_buffered(live, sim):
    settle(live, live.tenant, speculation="cascade")

    def stream(content):
        with sdk(live).chat.completions.with_streaming_response.create(
                model="auto", stream=True, max_tokens=5, messages=[{"role": "user", "content": content}]) as r:
            return r.headers, r.text()

    headers, _ = stream(SUPPORT)
    assert headers["x-aka-model"] == CHEAP and "x-aka-speculation" not in headers
    routing_settings_update(tenant=live.tenant, buffered_speculation=True)
    time.sleep(0.6)
    headers, text = stream(SUPPORT_AGAIN)
    assert (headers["x-aka-model"], headers["x-aka-speculation"]) == (STRONG, "cascade:rejected")
    assert "data: [DONE]" in text
    rows = live.records(expected=2)
    assert [(r.stream, r.speculation, r.status_code) for r in rows] == [(True, "", 200), (True, "cascade", 200)]


@pytest.mark.parametrize("speculation", ["off", "cascade"])
def test_a_refused_routed_call_is_recorded_once_and_not_billed(live, sim, speculation):
    settle(live, live.tenant, speculation=speculation)
    httpx.post(f"{sim}/_sim/faults", json={"model": "*", "kind": "400", "times": None})
    try:
        refused = httpx.post(f"{live.url}/v1/chat/completions", headers={"authorization": f"Bearer {live.raw_key}"},
                             json={"model": "auto", "messages": [{"role": "user", "content": SUPPORT}]})
    finally:
        httpx.delete(f"{sim}/_sim/faults")
    assert refused.status_code == 400 and refused.headers["x-aka-route"] == "cheap"
    [row] = live.records()
    assert (row.status_code, row.billable, row.price_cents, row.route) == (400, False, 0, "cheap")


def test_an_llm_judges_cost_is_part_of_the_calls_cost(live, sim):
    # The simulator's judge model answers without a 'Score: N' line: the draft is rejected.
    settle(live, live.tenant, speculation="cascade", judge="llm", judge_model="gpt-4o-mini")
    answer = ask(live, SUPPORT)
    assert (answer.headers["x-aka-model"], answer.headers["x-aka-speculation"]) == (STRONG, "cascade:rejected")
    assert stats(sim)["requests"] == {CHEAP: 1, "gpt-4o-mini": 1, STRONG: 1}
    [row] = live.records()
    assert (row.judge, row.judge_score) == ("llm", 0.0)
    assert row.draft_cost_micros > 0 and row.judge_cost_micros > 0 and row.strong_cost_micros > 0
    assert row.provider_cost_micros == row.draft_cost_micros + row.judge_cost_micros + row.strong_cost_micros


def test_a_cascade_whose_strong_model_fails_records_what_it_spent_and_tells_the_breakers(live, sim, settings,
                                                                                           monkeypatch):
    """Run in this process, so that its circuit breakers can be read."""
    settings.AKA_SIMULATOR_URL, settings.AKA_RETRY_BASE_DELAY = sim, 0.01
    settings.AKA_BREAKER_FAILURES = settings.AKA_UPSTREAM_RETRIES + 1   # one failed call's attempts open a circuit
    monkeypatch.setattr(breaker, "_circuits", {})
    # The simulator's judge model answers without a 'Score: N' line: the draft is rejected.
    settle(live, live.tenant, speculation="cascade", judge="llm", judge_model="gpt-4o-mini")
    for model in (STRONG, "gpt-4o"):   # the strong model and its fallback
        httpx.post(f"{sim}/_sim/faults", json={"model": model, "kind": "500", "times": None})
    messages = [{"role": "user", "content": SUPPORT}]
    try:
        status, headers, body = routed_in_process(live, SUPPORT)
    finally:
        httpx.delete(f"{sim}/_sim/faults")

    assert status == 502
    assert orjson.loads(body)["error"]["code"] == "upstream_error"
    [row] = live.records()
    assert (row.request_id, row.status_code, row.billable, row.price_cents) == (headers["x-request-id"], 502, False, 0)
    assert (row.speculation, row.speculation_outcome, row.judge, row.judge_score) == ("cascade", "rejected", "llm", 0.0)
    # The draft and the judge were paid for; the strong model's failed attempts were not.
    drafted = httpx.post(f"{sim}/v1/chat/completions", json={"model": CHEAP, "messages": messages}).json()["usage"]
    cheap = asyncio.run(amodels())[CHEAP]
    assert row.draft_cost_micros == cheap.cost_micros(Usage(drafted["prompt_tokens"], drafted["completion_tokens"]))
    assert row.judge_cost_micros > 0 and row.strong_cost_micros == 0
    assert row.provider_cost_micros == row.draft_cost_micros + row.judge_cost_micros
    assert row.attempts == 1 + 1 + 2 * settings.AKA_BREAKER_FAILURES   # the draft, the judge, the strong chain
    assert (breaker.state(STRONG), breaker.state("gpt-4o")) == ("open", "open")


def decisions_speculating(monkeypatch) -> list[bool]:
    """Whether each routing decision made from now on assumed a judged draft."""
    real, seen = services.decide_with, []
    monkeypatch.setattr(services, "decide_with", lambda **kw: seen.append(kw["speculating"]) or real(**kw))
    return seen


JUDGE, JUDGE_CHAIN = "gpt-4o-mini", ["gpt-4o-mini", "claude-haiku-4-5", "gemini-2.5-flash"]   # and its fallbacks


def test_a_judge_models_failures_and_answers_reach_the_circuit_breakers(live, sim, settings, monkeypatch):
    """The judge's calls told the breakers nothing: a judge model failing every call kept
    being tried first, and a half-open one kept its circuit open."""
    settings.AKA_SIMULATOR_URL, settings.AKA_RETRY_BASE_DELAY = sim, 0.01
    half_open(monkeypatch, settings, JUDGE_CHAIN[1])
    settings.AKA_BREAKER_FAILURES = settings.AKA_UPSTREAM_RETRIES + 1   # one judging's attempts open a circuit
    settle(live, live.tenant, speculation="cascade", judge="llm", judge_model=JUDGE)
    httpx.post(f"{sim}/_sim/faults", json={"model": JUDGE, "kind": "500", "times": None})
    try:
        status, headers, _ = routed_in_process(live, SUPPORT)
    finally:
        httpx.delete(f"{sim}/_sim/faults")
    assert (status, headers["x-aka-speculation"]) == (200, "cascade:rejected")
    # The judge model failed each attempt; its half-open fallback took the probe and answered.
    assert (breaker.state(JUDGE), breaker.state(JUDGE_CHAIN[1])) == ("open", "closed")
    assert stats(sim)["requests"][JUDGE_CHAIN[1]] == 1
    [row] = live.records()
    assert row.attempts == 1 + settings.AKA_BREAKER_FAILURES + 1 + 1   # draft, judge chain, strong


def test_no_draft_is_made_while_every_judge_model_is_open(live, sim, settings, monkeypatch):
    """A draft no judge can pass is only paid for and waited on: the call goes to its
    route's model, as with speculation off."""
    settings.AKA_SIMULATOR_URL, settings.AKA_BREAKER_COOLDOWN = sim, 60
    monkeypatch.setattr(breaker, "_circuits", {m: breaker.Circuit(failures=5, opened_at=time.monotonic())
                                               for m in JUDGE_CHAIN})
    settle(live, live.tenant, speculation="cascade", judge="llm", judge_model=JUDGE)
    speculating = decisions_speculating(monkeypatch)
    status, headers, _ = routed_in_process(live, SUPPORT)
    assert speculating == [False]   # decided, and its loss spent, as without speculation
    assert (status, headers["x-aka-route"], headers["x-aka-model"]) == (200, "cheap", CHEAP)
    assert "x-aka-speculation" not in headers
    assert stats(sim)["requests"] == {CHEAP: 1}
    [row] = live.records()
    assert (row.speculation, row.judge, row.judge_cost_micros) == ("", "", 0)


def test_a_stream_that_is_not_speculated_is_decided_as_without_speculation(live, sim, settings, monkeypatch):
    """Cascade on, a stream not buffered: no draft is made, so the cheap model streams
    unjudged, and the decision must spend the quality budget for that (it spent a judged
    draft's far smaller loss)."""
    settings.AKA_SIMULATOR_URL = sim
    settle(live, live.tenant, speculation="cascade")
    speculating = decisions_speculating(monkeypatch)
    status, headers, _ = routed_in_process(live, SUPPORT, stream=True)
    assert (status, headers["x-aka-model"], speculating) == (200, CHEAP, [False])
    assert "x-aka-speculation" not in headers


def test_a_half_open_model_passed_over_is_tried_by_the_next_call_it_suits(live, sim, settings, monkeypatch):
    """The cheap model's circuit is half open. A math prompt goes to the strong model: the
    router looked at the cheap one and did not call it, which took its probe, and the
    support prompt after it was routed around it for one more cool-down."""
    settings.AKA_SIMULATOR_URL = sim
    half_open(monkeypatch, settings, CHEAP)
    settle(live, live.tenant)
    _, math, _ = routed_in_process(live, MATH)
    assert (math["x-aka-route"], math["x-aka-model"]) == ("strong", STRONG)
    _, support, _ = routed_in_process(live, SUPPORT)
    assert (support["x-aka-route"], support["x-aka-model"]) == ("cheap", CHEAP)
    assert breaker.state(CHEAP) == "closed"   # the probe answered
    assert stats(sim)["requests"] == {STRONG: 1, CHEAP: 1}


def test_a_draft_the_judge_rejects_is_a_success_for_its_circuit_breaker(live, sim, settings, monkeypatch):
    """The cheap model's circuit is half open and its draft is the probe. The draft answered,
    cut at 5 tokens, and the judge rejected it: a rejection on quality, from a healthy
    upstream. Unreported, the probe kept the circuit open one more cool-down."""
    settings.AKA_SIMULATOR_URL = sim
    half_open(monkeypatch, settings, CHEAP)
    settle(live, live.tenant, speculation="cascade")
    status, headers, _ = routed_in_process(live, SUPPORT, max_tokens=5)
    assert (status, headers["x-aka-route"], headers["x-aka-speculation"]) == (200, "cheap", "cascade:rejected")
    assert stats(sim)["requests"] == {CHEAP: 1, STRONG: 1}
    assert breaker.state(CHEAP) == "closed"


def test_a_routed_stream_its_client_leaves_is_a_success_for_its_circuit_breaker(live, sim, settings, monkeypatch):
    """The cheap model's circuit is half open and a routed stream takes its probe; the client
    hangs up once the first tokens reach it. The upstream was answering: a success. Before,
    the call reported nothing (it had no whole answer), and the probe kept the circuit open
    one more cool-down."""
    settings.AKA_SIMULATOR_URL = sim
    half_open(monkeypatch, settings, CHEAP)
    settle(live, live.tenant)
    status, headers, _ = routed_in_process(live, SUPPORT + " [[pace:tps=20]]", leave=True, stream=True)
    assert (status, headers["x-aka-route"], headers["x-aka-model"]) == (200, "cheap", CHEAP)
    [row] = live.records()
    assert (row.status_code, row.error_type) == (499, "client_closed")
    assert breaker.state(CHEAP) == "closed"


@pytest.mark.parametrize("kind, circuit", [("400", "closed"), ("500", "open")])
def test_a_request_the_upstream_rejects_opens_no_circuit(live, sim, settings, monkeypatch, kind, circuit):
    """An upstream 400 is the request's fault (too long, malformed): five such requests from
    one tenant opened the model's circuit for every tenant of the worker. Run in this process."""
    settings.AKA_SIMULATOR_URL, settings.AKA_RETRY_BASE_DELAY = sim, 0.01
    settings.AKA_BREAKER_FAILURES = 1
    monkeypatch.setattr(breaker, "_circuits", {})
    httpx.post(f"{sim}/_sim/faults", json={"model": "*", "kind": kind, "times": None})
    try:
        status, _, _ = through_handler("/v1/chat/completions", orjson.dumps(
            {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": SUPPORT}]}),
            [(b"authorization", f"Bearer {live.raw_key}".encode())])
    finally:
        httpx.delete(f"{sim}/_sim/faults")
    assert status == (400 if kind == "400" else 502)
    assert breaker.state("gpt-4o-mini") == circuit


def test_an_alias_serves_its_one_model_able_to_and_refuses_when_none_is(live, sim):
    settle(live, live.tenant, aliases={"aka:look": [CHEAP, STRONG], "aka:claude": ["claude-haiku-4-5",
                                                                                  "claude-sonnet-4-5"]})
    picture = [{"type": "text", "text": SUPPORT}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}]
    looked = sdk(live).chat.completions.with_raw_response.create(
        model="aka:look", messages=[{"role": "user", "content": picture}])   # gpt-4.1-nano reads no images
    assert looked.headers["x-aka-model"] == STRONG and "x-aka-route" not in looked.headers
    with pytest.raises(openai.BadRequestError) as refused:   # neither Claude model has a JSON mode
        ask(live, SUPPORT_AGAIN, model="aka:claude", response_format={"type": "json_object"})
    assert refused.value.code == "unsupported_parameter" and "json" in refused.value.message


def test_a_cache_hit_tells_no_circuit_breaker_that_its_model_answered(live, sim, settings, monkeypatch):
    """A cached answer calls no model. Reported as the cheap model's success, an exact hit of
    its answer closed its open circuit, and hits between its failures would reset their count."""
    settings.AKA_SIMULATOR_URL = sim
    monkeypatch.setattr(breaker, "_circuits", {})
    settle(live, live.tenant, cache=True)
    status, first, _ = routed_in_process(live, SUPPORT)
    assert (status, first["x-aka-model"], first["x-aka-cache"]) == (200, CHEAP, "miss")
    for _ in range(settings.AKA_BREAKER_FAILURES):
        breaker.record(CHEAP, ok=False)
    status, again, _ = routed_in_process(live, SUPPORT)
    assert (status, again["x-aka-model"], again["x-aka-cache"]) == (200, CHEAP, "exact")
    assert breaker.state(CHEAP) == "open"
    assert stats(sim)["requests"] == {CHEAP: 1}
