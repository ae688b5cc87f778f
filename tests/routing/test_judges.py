"""Each judge scores known good and bad answers as expected."""

import asyncio
from decimal import Decimal

import pytest

from apps.core.llm import ChatRequest, ChatResult, Usage
from apps.providers.catalog import ModelInfo
from apps.providers.errors import UpstreamError
from apps.routing.heuristic import math_features, math_probability, wrong_worded_arithmetic
from apps.routing.judges import HeuristicJudge, LLMJudge, LogprobJudge

SPRINTS = "James decides to run 3 sprints 3 times a week. He runs 60 meters each sprint. How many total meters " \
          "does he run a week?"
SPRINTS_RIGHT = ("He runs 3 x 60 = <<3*60=180>>180 meters a session.\nSo in a week he runs 180 x 3 = <<180*3=540>>540 "
                 "meters.\n#### 540")
SUPPORT = "Where is my new debit card?"
JUDGE_MODEL = ModelInfo(id="judge", provider="openai", upstream_id="judge", family="judge", tier="cheap",
                        input_per_mtok=Decimal("0.15"), output_per_mtok=Decimal("0.6"), context_window=128000,
                        max_output_tokens=16384, capabilities=frozenset({"chat"}), fallbacks=())


def ask(prompt: str, **kw) -> ChatRequest:
    return ChatRequest(model="auto", messages=[{"role": "user", "content": prompt}], **kw)


def answer(text: str | None, finish: str = "stop", logprobs=None) -> ChatResult:
    return ChatResult(id="x", model="mini", content=text, finish_reason=finish, usage=Usage(10, 20), logprobs=logprobs)


def judged(judge, prompt, result, task, threshold=0.5, **kw):
    return asyncio.run(judge.verdict(req=ask(prompt, **kw), answer=result, task=task, threshold=threshold))


@pytest.mark.parametrize("prompt, text, finish, task, reason", [
    (SUPPORT, "Cards arrive within 5 working days; you can track yours in the app under Cards.", "stop", "support",
     "ok"),
    ("Which is a mammal?\nA) shark\nB) whale", "B) whale", "stop", "choice", "ok"),
])
def test_heuristic_passes_good_answers(prompt, text, finish, task, reason):
    verdict = judged(HeuristicJudge(), prompt, answer(text, finish), task)
    assert (verdict.passed, verdict.score, verdict.reason) == (True, 1.0, reason)


@pytest.mark.parametrize("prompt, text, finish, task, reason", [
    (SUPPORT, "", "stop", "support", "empty answer"),
    (SUPPORT, "Cards usually arrive within", "length", "support", "finish_reason=length"),
    (SUPPORT, "I'm sorry, but I can't help with that.", "stop", "support", "refusal"),
    (SUPPORT, "Where is my new debit card?", "stop", "support", "echoes the prompt"),
    (SPRINTS, "He runs 3 x 60 = <<3*60=180>>180 meters, so 180 x 3 = <<180*3=5", "stop", "math",
     "cut off mid-calculation"),
    (SPRINTS, "He runs 3 x 60 = 180 meters a session, and 180 x 3 = 560 meters a week.\n#### 560", "stop", "math",
     "1 calculation(s) do not check out"),
    (SPRINTS, "He runs a lot of meters every week, more than most people do.", "stop", "math",
     "no number in a math answer"),
    ("Which is a mammal?\nA) shark\nB) whale", "Both live in the sea.", "stop", "choice", "no option chosen"),
])
def test_heuristic_rejects_bad_answers(prompt, text, finish, task, reason):
    verdict = judged(HeuristicJudge(), prompt, answer(text, finish), task)
    assert verdict.passed is False and verdict.reason == reason and verdict.score < 0.5


UNITS = ("Richard lives in an apartment building with 15 floors. Each floor contains 8 units, and 3/4 of the "
         "building is occupied. What's the total number of unoccupied units In the building?")
UNITS_RIGHT = ("There are 15 x 8 = <<15*8=120>>120 units in the building.\n3/4 of them are occupied: 120 x 3/4 = "
               "<<120*3/4=90>>90 units.\nSo 120 - 90 = <<120-90=30>>30 units are unoccupied.\n#### 30")
# The weak model's recorded answer (GSM8K): 15 x 8 x 3/4 is 90, not 36.
UNITS_WRONG = ("The total number of occupied units is 15 floors * 8 units/floor * 3/4 = 36 x 3/4 = 27 units.\n"
               "Since each floor contains 8 units, there are a total of 15 x 8 = 120 units in the building.\n"
               "Therefore, the number of unoccupied units is 120 units - 27 units = 93 units.\n#### 93")
UNITS_UNSURE = ("The building has 15 x 8 = 120 units. However, assuming not all floors are the same, about 3/4 is "
                "occupied, so roughly 1/4 of 15 floors is 3.75.\n#### 3.75")
SPRINTS_UNUSED = ("He runs 60 meters a sprint, so in a week he runs 60 x 3 = <<60*3=180>>180 meters, but since it's "
                  "not clear, assume that.\n#### 180")


@pytest.mark.parametrize("prompt, text", [(SPRINTS, SPRINTS_RIGHT), (UNITS, UNITS_RIGHT)])
def test_the_math_judge_passes_right_worked_answers(prompt, text):
    verdict = judged(HeuristicJudge(), prompt, answer(text), "math")
    assert verdict.passed and verdict.score > 0.75 and verdict.reason.startswith("math judge: P(right)")


@pytest.mark.parametrize("prompt, text", [(UNITS, UNITS_WRONG), (UNITS, UNITS_UNSURE), (SPRINTS, SPRINTS_UNUSED)])
def test_the_math_judge_fails_answers_whose_working_gives_them_away(prompt, text):
    # A miscalculation written with units between the numbers; second thoughts and a
    # fractional count; a given quantity never used.
    verdict = judged(HeuristicJudge(), prompt, answer(text), "math")
    assert not verdict.passed and verdict.score < 0.4


def test_calculations_written_with_units_are_checked():
    assert wrong_worded_arithmetic("15 floors * 8 units/floor * 3/4 = 36 units") == 1
    assert wrong_worded_arithmetic("15 floors * 8 units/floor * 3/4 = 90 units, and 120 units - 90 units = 30") == 0


def test_heuristic_checks_json_against_the_requested_schema():
    schema = {"type": "json_schema", "json_schema": {"name": "card", "schema": {
        "type": "object", "properties": {"eta_days": {"type": "integer"}}, "required": ["eta_days"]}}}
    good = judged(HeuristicJudge(), SUPPORT, answer('{"eta_days": 5}'), "support", response_format=schema)
    wrong_type = judged(HeuristicJudge(), SUPPORT, answer('{"eta_days": "soon"}'), "support", response_format=schema)
    not_json = judged(HeuristicJudge(), SUPPORT, answer("five days"), "support",
                      response_format={"type": "json_object"})
    assert (good.passed, wrong_type.passed, not_json.passed) == (True, False, False)
    assert wrong_type.reason.startswith("fails the schema") and not_json.reason == "not JSON"


def logprobs(*values: float) -> dict:
    return {"content": [{"token": f"t{i}", "logprob": v, "bytes": [], "top_logprobs": []}
                        for i, v in enumerate(values)]}


def test_logprob_judge_passes_confident_answers_and_rejects_unsure_ones():
    sure = judged(LogprobJudge(), SUPPORT, answer("Within 5 days.", logprobs=logprobs(-0.01, -0.1, -0.05)), "support")
    unsure = judged(LogprobJudge(), SUPPORT, answer("Within 5 days.", logprobs=logprobs(-2.0, -1.5, -2.5)),
                    "support")
    assert (sure.judge, sure.passed) == ("logprob", True) and sure.score == pytest.approx(0.9481, abs=1e-4)
    assert (unsure.passed, unsure.score) == (False, pytest.approx(0.1353, abs=1e-4))
    # A cut answer fails however confident its tokens were.
    cut = judged(LogprobJudge(), SUPPORT, answer("Within", "length", logprobs=logprobs(-0.01)), "support")
    assert cut.passed is False
    # Without log-probabilities the heuristic decides, and says so.
    blind = judged(LogprobJudge(), SUPPORT, answer("Within 5 days."), "support")
    assert (blind.judge, blind.passed, blind.reason) == ("heuristic", True, "no logprobs: ok")
    assert LogprobJudge().draft_request(ask(SUPPORT)).logprobs is True


def grader(reply: str | Exception):
    """Stands in for the remote judge model's provider (apps.providers.dispatch.complete)."""
    seen = []

    async def complete(req, chain, outcome, circuits=None):
        seen.append(req)
        if isinstance(reply, Exception):
            raise reply
        return ChatResult(id="g", model=chain[0].id, content=reply, finish_reason="stop", usage=Usage(1000, 4))

    return complete, seen


def test_llm_judge_scores_from_the_rubric_and_records_its_cost():
    complete, seen = grader("Score: 9")
    good = judged(LLMJudge([JUDGE_MODEL], complete), SUPPORT, answer("Within 5 days, tracked in the app."),
                  "support", threshold=0.7)
    assert (good.judge, good.score, good.passed) == ("llm", 0.9, True)
    assert good.cost_micros == Decimal("1000") * Decimal("0.15") + 4 * Decimal("0.6")
    rubric = seen[0]
    assert rubric.model == "judge" and rubric.messages[0]["role"] == "system"
    assert SUPPORT in rubric.messages[1]["content"] and "Within 5 days" in rubric.messages[1]["content"]

    complete, _ = grader("Score: 2")
    bad = judged(LLMJudge([JUDGE_MODEL], complete), SUPPORT, answer("Bananas."), "support", threshold=0.7)
    assert (bad.score, bad.passed) == (0.2, False)


@pytest.mark.parametrize("reply, reason", [
    ("The answer looks fine to me.", "judge gave no score"),
    (UpstreamError(502, "down", retryable=True), "judge unavailable"),
])
def test_llm_judge_that_gives_no_score_rejects_the_draft(reply, reason):
    complete, _ = grader(reply)
    verdict = judged(LLMJudge([JUDGE_MODEL], complete), SUPPORT, answer("Within 5 days."), "support")
    assert verdict.passed is False and verdict.reason.startswith(reason)
    assert verdict.judged is False   # so the router takes no label from it (test_decision)


def test_the_math_judge_reads_what_the_final_line_shows():
    # The same working: its final answer marked '#### 30', or left trailing in prose, or
    # marked but given as a number the working never computed.
    marked = math_probability(math_features(UNITS, UNITS_RIGHT))
    trailing = math_probability(math_features(UNITS, UNITS_RIGHT.replace("\n#### 30", "\nSo the answer is 30 units.")))
    uncomputed = math_probability(math_features(UNITS, UNITS_RIGHT.replace("#### 30", "#### 120")))
    assert math_features(UNITS, UNITS_RIGHT)["no_hashes_final"] == 0.0
    assert marked > 0.85 and trailing < marked - 0.05 and uncomputed < marked - 0.1


@pytest.mark.parametrize("text", [
    "3 x 60 = 180, and 180 x 3 = 540.\n#### " + "1" * 400,          # a final past float's range: inf
    "3 x 60 = 180, and 180 x 3 = 540.\n#### -" + "1" * 400,         # and below it: -inf
    "1" + "0" * 400 + " * 2 = 7, so 180 x 3 = 540.\n#### 540",      # a sum past it
])
@pytest.mark.parametrize("prompt", [SPRINTS, SPRINTS.replace("60 meters", "1" * 400 + " meters")])
def test_a_runaway_number_is_judged_not_a_crash(prompt, text):
    verdict = judged(HeuristicJudge(), prompt, answer(text), "math")
    assert 0.0 <= verdict.score <= 1.0   # not NaN either
