"""Routing's writes and decisions: the tenant's settings (a per-process snapshot, and
their one write), which model a routed call goes to, what the router learns after a
call, and feedback on calls (the router's labels)."""

import logging
import random
from dataclasses import dataclass, fields

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction

from apps.core.llm import Usage, estimated_tokens
from apps.core.snapshots import Snapshots
from apps.providers import dispatch
from apps.providers.catalog import ModelInfo
from apps.providers.models import CatalogModel

from . import breaker, labels, store
from .breaker import Probes
from .classify import CHOICE, MATH, task_of
from .judges import after_verdict, pass_rate
from .models import Feedback, RoutingSettings
from .predictor import Belief, belief, priors
from .selectors import NEGATIVE, routing_settings_for
from .store import Sample

__all__ = ["NEGATIVE", "Probes", "Sample"]
log = logging.getLogger(__name__)

# --- settings -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Config:
    """A tenant's routing settings as the hot path sees them (fields of RoutingSettings)."""

    pool: tuple
    aliases: dict
    allow_substitution: bool
    quality_floor: float
    speculation: str
    buffered_speculation: bool
    judge: str
    judge_threshold: float
    judge_model: str
    exploration: float


def _load_config(tenant_id: int) -> Config:
    row = routing_settings_for(tenant=tenant_id)
    values = {f.name: getattr(row, f.name) for f in fields(Config)}
    return Config(**{**values, "pool": tuple(values["pool"])})


_configs = Snapshots(_load_config, lambda: settings.AKA_KEY_CACHE_TTL)


async def snapshot(tenant_id: int) -> Config:
    """The tenant's settings as this process last read them (at most AKA_KEY_CACHE_TTL
    seconds ago, as with the cache's settings)."""
    return await _configs.aget(tenant_id)


class InvalidSettings(ValueError):
    """Settings a tenant may not have; `errors` maps each field to what is wrong with it."""

    def __init__(self, errors: dict):
        super().__init__("; ".join(f"{name}: {message}" for name, message in errors.items()))
        self.errors = errors


ALIAS_PREFIX = "aka:"
MAX_POOL = 6


def _chats(model_id, catalog: dict[str, CatalogModel]) -> bool:
    return model_id in catalog and "chat" in catalog[model_id].capabilities


def _check_pool(name: str, pool, catalog: dict[str, CatalogModel]) -> list[str]:
    pool = list(pool) if isinstance(pool, tuple) else pool
    if not isinstance(pool, list) or not 2 <= len(pool) <= MAX_POOL or not all(isinstance(m, str) for m in pool):
        raise InvalidSettings({name: f"Give a list of 2 to {MAX_POOL} model ids, cheapest first."})
    unknown = [m for m in pool if not _chats(m, catalog)]
    if unknown:
        raise InvalidSettings({name: f"Not chat models of the catalog: {', '.join(unknown)}."})
    if len(set(pool)) != len(pool):
        raise InvalidSettings({name: "A model may appear once."})
    prices = [catalog[m].input_per_mtok + catalog[m].output_per_mtok for m in pool]
    if prices != sorted(prices):
        raise InvalidSettings({name: "Order the models from the cheapest to the strongest (by list price)."})
    return pool


def _check_aliases(aliases, catalog) -> dict:
    if not isinstance(aliases, dict):
        raise InvalidSettings({"aliases": 'Give an object such as {"aka:support": ["gpt-4o-mini", "gpt-4o"]}.'})
    aliases = dict(aliases)   # the caller's is left as it came
    for alias, pool in aliases.items():
        if not (alias.startswith(ALIAS_PREFIX) and 4 < len(alias) <= 60 and alias[4:].replace("-", "").replace(
                "_", "").isalnum()):
            raise InvalidSettings({"aliases": f"'{alias}': an alias is 'aka:' and a name of letters, digits, - or _."})
        aliases[alias] = _check_pool("aliases", pool, catalog)
    return aliases


@transaction.atomic
def routing_settings_update(*, tenant, **changes) -> RoutingSettings:
    """Applies (and validates: InvalidSettings, a ValueError, names each bad field) changed settings; the
    tenant's first change creates its row. This process sees them at once, the others
    with their next snapshot."""
    known = {f.name for f in fields(Config)}
    strange = set(changes) - known
    if strange:
        raise InvalidSettings({name: "Not a routing setting." for name in strange})
    catalog = {m.model_id: m for m in CatalogModel.objects.filter(enabled=True)}
    if "pool" in changes:
        changes["pool"] = _check_pool("pool", changes["pool"], catalog)
    if "aliases" in changes:
        changes["aliases"] = _check_aliases(changes["aliases"], catalog)
    if "judge_model" in changes and not _chats(changes["judge_model"], catalog):
        raise InvalidSettings({"judge_model": f"'{changes['judge_model']}' is not a chat model of the catalog."})
    row, _ = RoutingSettings.objects.for_tenant(tenant).get_or_create(tenant=tenant)
    for name, value in changes.items():
        setattr(row, name, value)
    try:
        row.full_clean()
    except ValidationError as exc:
        raise InvalidSettings({name: " ".join(messages) for name, messages in exc.message_dict.items()}) from exc
    row.save(update_fields=list(changes))
    transaction.on_commit(lambda: _configs.forget(row.tenant_id))
    return row


def pool_for(config: Config, requested: str, catalog: dict[str, ModelInfo],
             needs: frozenset[str]) -> list[ModelInfo] | None:
    """The models of the catalog that a call naming `requested` may be routed between,
    cheapest first, those able to serve the call's `needs` only; None when the name is not
    routed (a model named without substitution). Fewer than two: nothing to route (routed())."""
    if requested == "auto":
        names = config.pool
    elif requested in config.aliases:
        names = config.aliases[requested]
    elif config.allow_substitution and requested in config.pool:
        names = config.pool
    else:
        return None
    return [catalog[n] for n in names if n in catalog and needs <= catalog[n].capabilities]


def routed(members: list[ModelInfo] | None) -> list[ModelInfo]:
    """pool_for's members when there is a choice between them to route, else []."""
    return members if members and len(members) >= 2 else []


# --- the decision ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Decision:
    route: str                    # cheap | strong | explore | fallback
    reason: str
    task: str
    model: ModelInfo              # the model the route chose
    cheap: ModelInfo              # the cheapest healthy model of the pool (a speculation's draft)
    strong: ModelInfo             # the strongest healthy model
    predicted_quality: float      # P(the cheapest model's answer is good)
    draft: str = "skip"           # speculation: confident | at_risk (a judged draft may serve) | skip (strong only)
    judge_threshold: float = 0.0  # a draft's pass mark: the tenant's, or P(good) the allowed loss leaves, if higher


class Exploration:
    """Thompson sampling on at most `share` of a tenant's routed calls (per process): a
    call explores only while explored / decided stays within the share, so the bound
    holds at every moment, not just on average."""

    def __init__(self, rng: random.Random | None = None):
        self.rng = rng or random.Random()
        self.counts: dict[int, list[int]] = {}

    def may_explore(self, tenant_id: int, share: float) -> bool:
        counts = self.counts.setdefault(tenant_id, [0, 0])
        counts[0] += 1
        return share > 0 and self.rng.random() < share and counts[1] + 1 <= share * counts[0]

    def explored(self, tenant_id: int) -> None:
        self.counts[tenant_id][1] += 1


exploration = Exploration()


class QualityBudget:
    """The quality floor held on average over a tenant's routed calls (per process): each
    call may lose up to `allowance` of the strong model's predicted quality (1 - floor to
    start, which is the floor call by call), scaled by what the call saves on the cheap
    model against the tenant's typical call: the floor is an average over calls, the bill
    a sum of dollars, so a loss is best spent where it saves the most (on MMLU's held-out
    half, by the subject priors alone, 2.3x instead of 1.8x cheaper than strong-only at 95%
    of its accuracy; a question's length sets its cost). The allowance follows what was
    spent: calls sent to the strong model (no loss) raise it, cheap answers whose predicted
    loss exceeds 1 - floor lower it, so the predicted loss averages 1 - floor, spent on the
    calls where the cheap model loses least per dollar saved (a stochastic-approximation
    step per call)."""

    STEP = 0.2
    CEILING = 0.5
    # The typical saving is a running mean: each call moves it by this share of the gap.
    SMOOTHING = 0.05
    # The optimism correction waits for this many verdicts, then is their mean shortfall
    # (not shrunk toward none: the floor is a promise, so doubt goes the strong way).
    OPTIMISM_VERDICTS = 5
    OPTIMISM_BOUND = 0.3

    def __init__(self) -> None:
        self.allowances: dict[int, float] = {}
        self.savings: dict[int, float] = {}
        self.misses: dict[int, tuple[float, int]] = {}

    def observed(self, tenant_id: int, *, predicted: float, good: float) -> None:
        """The client's verdict on a cheap answer served without a judge, against the
        P(good) the decision predicted for it. The predictions hold the floor only if
        they are right on the calls the router picks, and those are picked for looking
        good: on GSM8K, routing alone kept 0.903 of strong's accuracy for a predicted
        0.95, because the weak model does worse on the long problems it was sent."""
        total, n = self.misses.get(tenant_id, (0.0, 0))
        self.misses[tenant_id] = (total + predicted - good, n + 1)

    def optimism(self, tenant_id: int) -> float:
        """How much the tenant's cheap answers fell short of their predictions, once there
        are enough verdicts. Never below none: the answers the router sends cheap are those
        that look best, so doing better than predicted on them says little about the rest
        (loosening on it let MMLU fall to 0.904 of strong in bench/routing)."""
        total, n = self.misses.get(tenant_id, (0.0, 0))
        if n < self.OPTIMISM_VERDICTS:
            return 0.0
        return min(max(total / n, 0.0), self.OPTIMISM_BOUND)

    def allowance(self, tenant_id: int, floor: float) -> float:
        return self.allowances.get(tenant_id, 1.0 - floor)

    def allowance_for(self, tenant_id: int, floor: float, saving: float | None) -> float:
        """This call's allowed loss: the allowance scaled by the call's saving over the
        tenant's typical one (the allowance itself when the saving is unknown)."""
        allowance = self.allowance(tenant_id, floor)
        if not saving or saving <= 0:
            return allowance
        typical = self.savings.get(tenant_id, saving)
        typical += self.SMOOTHING * (saving - typical)
        self.savings[tenant_id] = typical
        return min(allowance * saving / typical, self.CEILING)

    def spend(self, tenant_id: int, floor: float, loss: float) -> None:
        moved = self.allowance(tenant_id, floor) + self.STEP * ((1.0 - floor) - loss)
        self.allowances[tenant_id] = min(max(moved, 0.0), self.CEILING)


# Output tokens expected per prompt token, to weigh a call's saving before it is answered:
# a multiple-choice answer is a letter; the strong model's GSM8K answers run 1.75 times
# their question (104 tokens for 60, RouteLLM's data); for other tasks, our guess.
OUTPUT_PER_PROMPT_TOKEN = {CHOICE: 0.0, MATH: 1.75}
OTHER_OUTPUT_PER_PROMPT_TOKEN = 1.0


def saving(*, cheap: ModelInfo, strong: ModelInfo, task: str, prompt_tokens: int) -> float:
    """What serving the cheap model instead of the strong one is expected to save
    (micro-dollars), from the prompt's size."""
    usage = Usage(prompt_tokens, round(1 + prompt_tokens * OUTPUT_PER_PROMPT_TOKEN.get(task, OTHER_OUTPUT_PER_PROMPT_TOKEN)))
    return float(strong.cost_micros(usage) - cheap.cost_micros(usage))


budget = QualityBudget()


def _loss(quality: float, strongest: float) -> float:
    """The share of the strong model's quality lost by serving an answer of `quality`."""
    return max(0.0, 1.0 - quality / max(strongest, 1e-9))


def choose(*, pool: list[ModelInfo], beliefs: list[Belief], allowance: float,
           optimism: float = 0.0) -> tuple[int, float]:
    """(index of the cheapest model whose loss against the strongest is within the
    allowance, that model's predicted loss). `beliefs` are point estimates or samples;
    the cheaper models' are taken `optimism` lower (QualityBudget.optimism)."""
    strongest = beliefs[-1].mean
    for i, b in enumerate(beliefs[:-1]):
        if _loss(b.mean - optimism, strongest) <= allowance:
            return i, _loss(b.mean - optimism, strongest)
    return len(pool) - 1, 0.0


def _point(p: float) -> Belief:
    """A belief whose mean is `p` (choose reads only means)."""
    p = min(max(p, 1e-9), 1 - 1e-9)
    return Belief(p, 1 - p)


def _speculated(task: str, cheap: float, strongest: float, threshold: float) -> tuple[float, float]:
    """(loss if a judged draft is served, expected loss of drafting): a draft is served
    only on a pass, which makes it likelier good; a failed one goes to the strong model."""
    served = _loss(after_verdict(cheap, task, True, threshold), strongest)
    return served, pass_rate(cheap, task, threshold) * served


def decide_with(*, tenant_id: int, config: Config, pool: list[ModelInfo], task: str, neighbours,
                vector: np.ndarray | None = None, prompt_tokens: int = 0, explorer: Exploration = exploration,
                spent: QualityBudget = budget, speculating: bool = True) -> Decision:
    """The decision from what the predictor knows (pure but for the tenant's exploration
    count and quality budget: the neighbours are fetched). With speculation on, the draft
    is `confident` when the cheap model keeps the floor, `at_risk` when only a judged draft
    would, and `skip` (straight to the strong model) when not even a pass would. When this
    call cannot speculate (`speculating`: speculation.judge_of found no judge for it, say a
    stream not buffered, tools, an LLM judge whose every circuit is open) it is decided,
    and its loss spent, as with speculation off: the cheap model will answer unjudged."""
    healthy = [m for m in pool if not breaker.is_open(m.id)]
    skipped = [m.id for m in pool if m not in healthy]
    usable = healthy or pool
    cheap_rate, strong_rate, kind = priors(task, vector)
    beliefs = [belief(model=m.id, prior=strong_rate if i == len(usable) - 1 else cheap_rate, neighbours=neighbours)
               for i, m in enumerate(usable)]
    allowance = spent.allowance_for(tenant_id, config.quality_floor, prompt_tokens and saving(
        cheap=usable[0], strong=usable[-1], task=task, prompt_tokens=prompt_tokens))
    optimism = spent.optimism(tenant_id)
    index, loss = choose(pool=usable, beliefs=beliefs, allowance=allowance, optimism=optimism)
    cheap_mean, strongest = beliefs[0].mean - optimism, beliefs[-1].mean
    route = "strong" if index == len(usable) - 1 else "cheap"
    draft, threshold = "skip", max(config.judge_threshold, strongest * (1 - allowance))
    if config.speculation != "off" and speculating and len(usable) > 1:
        served_loss, drafting_loss = _speculated(task, cheap_mean, strongest, threshold)
        if route == "cheap":
            draft, loss = "confident", drafting_loss
        elif served_loss <= allowance:
            draft, loss = "at_risk", drafting_loss
    reason = (f"{kind}: cheap keeps {1 - _loss(cheap_mean, strongest):.0%} of the strong quality, "
              f"{allowance:.0%} loss allowed")
    if len(usable) > 1 and explorer.may_explore(tenant_id, config.exploration):
        sampled = [_point(b.sample(explorer.rng)) for b in beliefs]
        tried, _ = choose(pool=usable, beliefs=sampled, allowance=allowance, optimism=optimism)
        if tried != index:
            explorer.explored(tenant_id)
            index, route, draft, loss = tried, "explore", "skip", 0.0
            reason = f"{kind}: Thompson sample chose {usable[tried].id}"
    if route != "explore":
        spent.spend(tenant_id, config.quality_floor, loss)
    if skipped:
        route, reason = "fallback", f"circuit open: {', '.join(skipped)}; " + reason
    return Decision(route=route, reason=reason[:100], task=task, model=usable[index], cheap=usable[0],
                    strong=usable[-1], predicted_quality=round(beliefs[0].mean, 4), draft=draft,
                    judge_threshold=round(threshold, 4))


def judge_label(decision: Decision, verdict) -> float | None:
    """What a judge's verdict on a draft teaches about the cheap model (a weaker label than
    the client's): P(good) after the verdict, capped by the judge's own score (a cut or
    refused answer is surely bad); None when the verdict shows nothing (a multiple-choice
    letter passes whatever it says, or a judge that could not judge: unreachable, or no score)."""
    if not verdict.judged:
        return None
    after = after_verdict(decision.predicted_quality, decision.task, verdict.passed, decision.judge_threshold)
    if abs(after - decision.predicted_quality) < 1e-6:
        return None
    return round(min(after, verdict.score), 4)


async def decide(*, tenant_id: int, config: Config, pool: list[ModelInfo], prompt: str,
                 vector: np.ndarray | None, speculating: bool = True) -> Decision:
    """Where a routed call goes: the cheapest model of the pool predicted to keep the
    tenant's quality floor (the labelled neighbours from this process's copy of the
    tenant's labels, or one indexed query while it has none; then arithmetic)."""
    neighbours = []
    if vector is not None:
        neighbours = await labels.nearest(tenant_id=tenant_id, vector=vector, models=[m.id for m in pool],
                                          k=settings.AKA_ROUTING_NEIGHBOURS)
    return decide_with(tenant_id=tenant_id, config=config, pool=pool, task=task_of(prompt), neighbours=neighbours,
                       vector=vector, prompt_tokens=estimated_tokens(prompt), speculating=speculating)


def chain_for(decision: Decision, catalog: dict[str, ModelInfo], needs: set[str]) -> list[ModelInfo]:
    """The chosen model, then its fallbacks (apps.providers.dispatch.chain_for order),
    without models whose circuit is open."""
    return [m for m in dispatch.chain_for(decision.model, catalog, needs)
            if m is decision.model or not breaker.is_open(m.id)]


# --- after the call -------------------------------------------------------------------


def observe(*, failed: list[str], served: str | None, answered: list[str]) -> None:
    """Feeds the circuit breakers: each failed attempt, then each model that answered: the
    one served, and those a speculation saw answer (a draft rejected on quality, a strong
    stream closed once the draft was accepted: healthy upstreams)."""
    for model_id in failed:
        breaker.record(model_id, ok=False)
    for model_id in (served, *answered):
        if model_id:
            breaker.record(model_id, ok=True)


async def remember(*, tenant_id: int, vector: np.ndarray, samples: list[store.Sample]) -> None:
    """Stores a routed call's answers with the prompt's embedding (before its ledger row,
    so feedback, which needs the row, always finds them)."""
    await store.insert(tenant_id=tenant_id, vector=vector, samples=samples)
    for s in samples:
        if s.good is not None:
            labels.learned(tenant_id=tenant_id, request_id=s.request_id, model=s.model, good=s.good, vector=vector)


# --- feedback -------------------------------------------------------------------------

LABEL = """
UPDATE routing_sample SET good = %s, label_source = 'feedback'
WHERE tenant_id = %s AND request_id = %s AND model = %s
RETURNING vector_send(embedding)
"""


def feedback_record(*, tenant_id: int, request_id: str, score: float, comment: str = "",
                    model_served: str = "", route: str = "", speculation: str = "",
                    predicted: float | None = None) -> Feedback:
    """Keeps the tenant's verdict, and makes it the label of the served model's answer:
    the next similar prompts are routed by it (in this process from the next call). A
    first verdict on a cheap answer served without a judge also tells the quality budget
    how the prediction `predicted` for it fared."""
    found, first = Feedback.objects.for_tenant(tenant_id).update_or_create(
        tenant_id=tenant_id, request_id=request_id, defaults={"score": score, "comment": comment})
    good = (score + 1) / 2
    if first and route == "cheap" and not speculation and predicted is not None:
        budget.observed(tenant_id, predicted=predicted, good=good)
    if model_served:
        with connection.cursor() as cursor:
            cursor.execute(LABEL, [good, tenant_id, request_id, model_served])
            for vector in labels.vectors_sent([raw for raw, in cursor.fetchall()]):
                transaction.on_commit(lambda vector=vector: labels.learned(
                    tenant_id=tenant_id, request_id=request_id, model=model_served, good=good, vector=vector))
    return found
