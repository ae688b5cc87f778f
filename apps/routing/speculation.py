"""Speculative execution: a cheap model drafts, a judge decides whether its answer is
served, and the strong model answers when it is not.

- cascade: the draft first; the strong model only on a rejection. Cheapest; a rejected
  draft adds its latency (and the judge's) to the call.
- race: draft and strong at once, the strong one as a stream; an accepted draft closes
  the strong stream (the provider stops generating), which is billed for its input and
  the output tokens received until then. Fastest; costs the strong call's start.
- selective race: race when the router saw risk for the cheap model, cascade otherwise.

The router decides whether there is a draft at all (Decision.draft): `confident` calls
(the cheap model keeps the floor) and `at_risk` ones (only a judged draft would) are
speculated, `skip` ones go straight to the strong model, in every mode. A draft is
served when its judge's score (read as P(good)) reaches both the tenant's threshold and
what the floor leaves of the strong model's quality (Decision.judge_threshold).

Only whole answers are judged, so a streaming client is served by speculation only when
the tenant buffers it (its stream then starts once an answer is chosen); otherwise it
gets the routed model's stream at once. Requests with tools, several choices or
log-probabilities are not speculated (a judge cannot weigh them, or they cannot be
merged from two models).
"""

import asyncio
import contextlib
from dataclasses import dataclass, field, replace
from decimal import Decimal

from apps.core.llm import ChatRequest, ChatResult, Delta, Final, Finish, Usage
from apps.providers import dispatch
from apps.providers.catalog import ModelInfo
from apps.providers.errors import UpstreamError

from . import breaker
from .judges import Judge, Verdict, judge_for
from .services import Config, Decision


@dataclass(frozen=True, slots=True)
class Plan:
    mode: str                     # the tenant's setting: cascade | race | selective
    run: str                      # what this call does: cascade | race
    draft: ModelInfo
    strong_chain: list[ModelInfo]
    judge: Judge
    threshold: float
    task: str


@dataclass
class Run:
    """What a speculated call did, for the response, the ledger and the router."""

    outcome: str = ""             # accepted | rejected | draft_failed | strong_first | strong_failed
    served: ModelInfo | None = None
    result: ChatResult | None = None
    verdict: Verdict | None = None
    # The models that answered, for the circuit breakers (the call reports the one served
    # anyway): the draft whatever its verdict, the strong model when we closed its stream
    # after it had started.
    answered: list[str] = field(default_factory=list)
    draft_cost: Decimal = Decimal(0)
    strong_cost: Decimal = Decimal(0)
    outcomes: list[dispatch.Outcome] = field(default_factory=list)

    @property
    def judge_cost(self) -> Decimal:
        return self.verdict.cost_micros if self.verdict else Decimal(0)


def judge_of(config: Config, req: ChatRequest, catalog: dict[str, ModelInfo]) -> Judge | None:
    """The judge this request's draft would have, or None when it cannot be speculated:
    the tenant does not speculate, the request is not a whole answer (a stream only when
    buffered), one choice, without tools or log-probabilities, or no judge can judge now
    (judges.judge_for). Asked once, before the routing decision, which spends the quality
    budget for a judged draft only when there is a judge (services.decide_with)."""
    if config.speculation == "off" or (req.stream and not config.buffered_speculation) or req.tools \
            or req.n != 1 or req.logprobs:
        return None
    return judge_for(config.judge, judge_model=config.judge_model, catalog=catalog)


def plan_for(*, config: Config, decision: Decision, judge: Judge | None, needs: frozenset[str],
             catalog: dict[str, ModelInfo]) -> Plan | None:
    """How this routed call speculates, or None when it goes straight to its model. `judge`:
    judge_of's for the request; `needs`: the request's (ChatRequest.needs), which the
    strong model's fallbacks must have."""
    if judge is None or decision.route == "explore" or decision.cheap is decision.strong:
        return None
    if decision.draft == "skip":
        return None   # not even a judged draft would keep the floor: no draft to pay and wait for
    run = config.speculation
    if run == "selective":
        run = "race" if decision.draft == "at_risk" else "cascade"
    draft = decision.model if decision.model is not decision.strong else decision.cheap
    strong_chain = [m for m in dispatch.chain_for(decision.strong, catalog, needs)
                    if m is decision.strong or not breaker.is_open(m.id)]
    return Plan(mode=config.speculation, run=run, draft=draft, strong_chain=strong_chain, judge=judge,
                threshold=decision.judge_threshold,
                task=decision.task)


async def run(plan: Plan, req: ChatRequest, done: Run) -> None:
    """Fills in `done` as the call goes, so that a call whose strong model fails still
    tells what its draft, judge and strong part cost. Whole answers are judged: a
    (buffered) streaming client's call is made as a whole answer, then replayed to it as
    a stream."""
    whole = replace(req, stream=False)
    await (race(plan, whole, done) if plan.run == "race" else cascade(plan, whole, done))


def _served(result: ChatResult, req: ChatRequest) -> ChatResult:
    """The answer as the client asked for it (a judge may have asked for log-probabilities)."""
    return result if req.logprobs else replace(result, logprobs=None)


async def _draft(plan: Plan, req: ChatRequest, done: Run) -> ChatResult | None:
    outcome = dispatch.Outcome()
    done.outcomes.append(outcome)
    try:
        result = await dispatch.complete(plan.judge.draft_request(req), [plan.draft], outcome,
                                         circuits=breaker.Probes())
    except UpstreamError:
        return None
    done.answered.append(plan.draft.id)
    done.draft_cost = plan.draft.cost_micros(result.usage)
    return result


async def _judge(plan: Plan, req: ChatRequest, draft: ChatResult, done: Run) -> Verdict:
    """The judge's verdict on the draft. A judge model's attempts are the call's, as the
    draft's are (the ledger's count, the circuit breakers)."""
    outcome = dispatch.Outcome()
    done.outcomes.append(outcome)
    done.verdict = await plan.judge.verdict(req=req, answer=draft, task=plan.task, threshold=plan.threshold,
                                            outcome=outcome)
    if done.verdict.model:
        done.answered.append(done.verdict.model)
    return done.verdict


async def cascade(plan: Plan, req: ChatRequest, done: Run) -> None:
    draft = await _draft(plan, req, done)
    if draft is not None:
        await _judge(plan, req, draft, done)
        if done.verdict.passed:
            done.outcome, done.served, done.result = "accepted", plan.draft, _served(draft, req)
            return
    done.outcome = "rejected" if draft is not None else "draft_failed"   # also when the strong call fails
    outcome = dispatch.Outcome()
    done.outcomes.append(outcome)
    strong = await dispatch.complete(req, plan.strong_chain, outcome, circuits=breaker.Probes())
    done.served = next(m for m in plan.strong_chain if m.id == strong.model)
    done.strong_cost = done.served.cost_micros(strong.usage)
    done.result = strong


class StrongStream:
    """The strong model's answer read from its stream, keeping the output received so
    that a cancelled call can be billed for what it produced."""

    def __init__(self) -> None:
        self.model: ModelInfo | None = None
        self.parts: list[str] = []
        self.finish = Finish("stop")

    async def read(self, req: ChatRequest, chain: list[ModelInfo], outcome: dispatch.Outcome) -> ChatResult:
        self.model, first, events = await dispatch.open_stream(replace(req, stream=True), chain, outcome,
                                                               circuits=breaker.Probes())
        try:
            event = first
            while True:
                if isinstance(event, Delta) and event.content:
                    self.parts.append(event.content)
                elif isinstance(event, Finish):
                    self.finish = event
                elif isinstance(event, Final):
                    return ChatResult(id=event.id, model=self.model.id, content="".join(self.parts),
                                      finish_reason=self.finish.finish_reason, usage=event.usage,
                                      provider=self.model.provider, stop_sequence=self.finish.stop_sequence)
                event = await anext(events)
        except UpstreamError as error:
            dispatch.failed(outcome, self.model, error)   # failed mid-way: its circuit breaker hears of it too
            raise
        finally:
            # Closing the stream closes the upstream connection: the provider stops generating.
            await events.aclose()


async def _cancel(task: asyncio.Task) -> None:
    task.cancel()
    with contextlib.suppress(BaseException):
        await task


def _cut_short(stream: StrongStream, prompt_tokens: int) -> Decimal:
    """What a strong stream that did not finish (we closed it, or it was cut) is billed:
    its input and the output received until then; nothing if it never started."""
    return stream.model.cost_micros(dispatch.cut_short(prompt_tokens, stream.parts)) if stream.model else Decimal(0)


async def race(plan: Plan, req: ChatRequest, done: Run) -> None:
    strong_outcome = dispatch.Outcome()
    stream = StrongStream()
    strong_task = asyncio.ensure_future(stream.read(req, plan.strong_chain, strong_outcome))
    draft_task = asyncio.ensure_future(_draft(plan, req, done))
    done.outcomes.append(strong_outcome)
    try:
        await asyncio.wait({draft_task, strong_task}, return_when=asyncio.FIRST_COMPLETED)
        if strong_task.done() and not draft_task.done() and strong_task.exception() is None:
            # The strong answer came first: nothing left to save on it.
            strong = strong_task.result()
            await _cancel(draft_task)
            # A draft cut short is billed for its input, which the strong call's usage measures.
            done.draft_cost = plan.draft.cost_micros(Usage(strong.usage.prompt_tokens, 0))
            done.outcome, done.served, done.result = "strong_first", stream.model, strong
            done.strong_cost = stream.model.cost_micros(strong.usage)
            return
        draft = await draft_task
        if draft is not None:
            await _judge(plan, req, draft, done)
            strong_failed = strong_task.done() and strong_task.exception() is not None
            if strong_task.done() and not strong_failed:
                strong = strong_task.result()   # it finished while the judge read: already paid for
                done.outcome, done.served, done.result = "strong_first", stream.model, strong
                done.strong_cost = stream.model.cost_micros(strong.usage)
                return
            if done.verdict.passed or strong_failed:
                await _cancel(strong_task)
                done.strong_cost = _cut_short(stream, draft.usage.prompt_tokens)
                done.outcome = "accepted" if done.verdict.passed else "strong_failed"
                done.served, done.result = plan.draft, _served(draft, req)
                return
        done.outcome = "rejected" if draft is not None else "draft_failed"   # also when the strong call fails
        try:
            strong = await strong_task
        except UpstreamError:
            # Its input is measured by the draft's usage; estimated from the messages when the
            # draft failed too (the provider sends the count only at the end).
            done.strong_cost = _cut_short(stream, draft.usage.prompt_tokens if draft else req.estimated_prompt_tokens())
            raise
        done.served, done.result = stream.model, strong
        done.strong_cost = stream.model.cost_micros(strong.usage)
    finally:
        for task in (draft_task, strong_task):
            if not task.done():
                await _cancel(task)
        if strong_task.cancelled() and stream.model is not None:
            # Started answering, then closed by us: a healthy upstream (one that failed mid-way
            # ended with its error, not cancelled, and reports that failure).
            done.answered.append(stream.model.id)
