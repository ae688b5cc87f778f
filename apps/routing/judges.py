"""Judges of a draft answer, pluggable per tenant (RoutingSettings.judge): each scores an
answer from 0 (certainly bad) to 1 (no sign of a problem), and the tenant's threshold
decides whether the draft is served or the strong model is asked.

- heuristic: signs of a bad answer, free and instant (truncation, refusal, an empty or
  echoed answer, a missing final answer where the task needs one, arithmetic that does
  not check out, JSON that fails the requested schema);
- logprob: the geometric mean of the answer's token probabilities, when the provider
  returns log-probabilities (the heuristic otherwise);
- llm: a rubric prompt to a judge model through our own provider layer, scored 1-10;
  its cost is part of the call's cost.
"""

import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from decimal import Decimal

from apps.core.llm import ChatRequest, ChatResult
from apps.providers import dispatch
from apps.providers.catalog import ModelInfo

from . import breaker
from .classify import CHOICE, MATH
from .heuristic import heuristic_score, math_model


@dataclass(frozen=True, slots=True)
class Verdict:
    judge: str
    score: float
    passed: bool
    reason: str
    cost_micros: Decimal = Decimal(0)
    # False when the judge could not judge (unreachable, no score): the draft is rejected,
    # but that says nothing about it, so it is no label for the router.
    judged: bool = True
    model: str = ""   # the judge model that answered, if one was called (its circuit breaker)


# --- what a verdict tells the router --------------------------------------------------

# Per task class, (share of good drafts a judge passes, share of bad drafts it lets
# through). Math: the heuristic judge's learned part, at the threshold in force, on the
# answers it was fitted on (data/math_judge.json "sight"; bench/judge_gsm8k.py prints the
# held-out figures); multiple choice: a lone letter shows nothing, so a pass says nothing;
# the rest: our assumption (empty, cut, refused and echoed answers are caught, plausible
# wrong ones are not). The logprob and LLM judges are not measured on these data and are
# assumed to see as much.
CHOICE_SIGHT, OTHER_SIGHT = (1.0, 1.0), (0.95, 0.6)


def sight(task: str, threshold: float) -> tuple[float, float]:
    if task == CHOICE:
        return CHOICE_SIGHT
    if task != MATH:
        return OTHER_SIGHT
    table = math_model()["sight"]
    return next(((recall, through) for t, recall, through in table if t >= threshold - 1e-9), tuple(table[-1][1:]))


def after_verdict(p: float, task: str, passed: bool, threshold: float) -> float:
    """P(the draft is good) once a judge passed (or failed) it, from P(good) before (Bayes)."""
    recall, let_through = sight(task, threshold)
    good, bad = (recall, let_through) if passed else (1 - recall, 1 - let_through)
    seen = p * good + (1 - p) * bad
    return p * good / seen if seen > 0 else p


def pass_rate(p: float, task: str, threshold: float) -> float:
    recall, let_through = sight(task, threshold)
    return p * recall + (1 - p) * let_through


# --- the judges -----------------------------------------------------------------------

class Judge:
    name: str

    async def verdict(self, *, req: ChatRequest, answer: ChatResult, task: str, threshold: float,
                      outcome: dispatch.Outcome | None = None) -> Verdict:
        """`outcome`: where a judge that calls a model tells what it tried (the call's)."""
        raise NotImplementedError

    def draft_request(self, req: ChatRequest) -> ChatRequest:
        """The request the draft model is sent (a judge may need more from it)."""
        return req


class HeuristicJudge(Judge):
    name = "heuristic"

    async def verdict(self, *, req, answer, task, threshold, outcome=None) -> Verdict:
        score, reason = heuristic_score(prompt=req.last_user_text(), answer=answer.content,
                                        finish_reason=answer.finish_reason, task=task,
                                        response_format=req.response_format)
        return Verdict(self.name, score, score >= threshold, reason)


def mean_logprob(logprobs: dict | None) -> float | None:
    tokens = [t.get("logprob") for t in (logprobs or {}).get("content") or () if isinstance(t, dict)]
    tokens = [t for t in tokens if isinstance(t, int | float)]
    return sum(tokens) / len(tokens) if tokens else None


class LogprobJudge(Judge):
    """exp(mean token log-probability): the answer's per-token confidence. Signs the
    heuristic sees (a cut answer, a refusal) still fail it."""

    name = "logprob"

    def draft_request(self, req: ChatRequest) -> ChatRequest:
        return replace(req, logprobs=True)

    async def verdict(self, *, req, answer, task, threshold, outcome=None) -> Verdict:
        sign, reason = heuristic_score(prompt=req.last_user_text(), answer=answer.content,
                                       finish_reason=answer.finish_reason, task=task,
                                       response_format=req.response_format)
        mean = mean_logprob(answer.logprobs)
        if mean is None:
            return Verdict("heuristic", sign, sign >= threshold, "no logprobs: " + reason)
        score = min(math.exp(mean), sign)
        return Verdict(self.name, score, score >= threshold, f"mean logprob {mean:.3f}; {reason}")


RUBRIC = (
    "You grade answers. Read the user's request and the assistant's answer below. "
    "Rate how correct, complete and helpful the answer is, from 1 (wrong or useless) to 10 "
    "(fully correct and helpful). Reply with exactly one line: 'Score: N'."
)
SCORE = re.compile(r"score\W{0,3}(10|[1-9])(?!\d)", re.IGNORECASE)

Complete = Callable[..., Awaitable[ChatResult]]   # (request, chain, outcome, circuits=): dispatch.complete


class LLMJudge(Judge):
    """A rubric prompt to the tenant's judge model and its fallbacks. An answer the judge
    does not score (no 'Score: N') fails, as does a judge that cannot be reached: the
    strong model answers instead. Its models have circuit breakers as routed ones do: a
    half-open one is tried by one judging call at a time (judge_for leaves the open ones
    out)."""

    name = "llm"

    def __init__(self, chain: list[ModelInfo], complete: Complete = dispatch.complete):
        self.chain, self.complete = chain, complete

    def rubric(self, req: ChatRequest, answer: ChatResult) -> ChatRequest:
        asked = req.last_user_text()[:6000]
        said = (answer.content or "")[:6000]
        return ChatRequest(model=self.chain[0].id, max_tokens=10, temperature=0.0, messages=[
            {"role": "system", "content": RUBRIC},
            {"role": "user", "content": f"Request:\n{asked}\n\nAnswer:\n{said}"}])

    async def verdict(self, *, req, answer, task, threshold, outcome=None) -> Verdict:
        try:
            graded = await self.complete(self.rubric(req, answer), self.chain, outcome or dispatch.Outcome(),
                                         circuits=breaker.Probes())
        except Exception as exc:  # noqa: BLE001  (an unreachable judge is a rejection, never a failed call)
            return Verdict(self.name, 0.0, False, f"judge unavailable: {exc}"[:100], judged=False)
        served = next((m for m in self.chain if m.id == graded.model), self.chain[0])
        cost = served.cost_micros(graded.usage)
        found = SCORE.search(graded.content or "")
        if found is None:
            return Verdict(self.name, 0.0, False, "judge gave no score", cost, judged=False, model=served.id)
        score = int(found.group(1)) / 10
        return Verdict(self.name, score, score >= threshold, f"judge scored {found.group(1)}/10", cost,
                       model=served.id)


def judge_for(name: str, *, judge_model: str, catalog: dict[str, ModelInfo]) -> Judge | None:
    """The tenant's judge as it can judge now: an LLM judge over its model and fallbacks
    whose circuits are not open (the heuristic one when its model is not in the catalog),
    or None while every one of them is open, when no draft could be passed."""
    model = catalog.get(judge_model)
    if name == "llm" and model is not None:
        chain = [m for m in dispatch.chain_for(model, catalog, set()) if not breaker.is_open(m.id)]
        return LLMJudge(chain) if chain else None
    if name == "logprob":
        return LogprobJudge()
    return HeuristicJudge()
