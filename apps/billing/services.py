"""Billing's front door: the facts of a call in, its ledger row out.

The gateway says what happened (who called, which model answered with how many tokens,
whether the cache served it, how it ended); this module decides what that means in
money: whether the call is billable, the plan's price, what the provider charged us,
and what the tenant's baseline model would have charged for the same work (the
counterfactual, from which every saving is computed).
"""

import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from django.conf import settings

from apps.core.llm import Usage
from apps.core.snapshots import Snapshots

from . import journal
from .ledger import normalise, writer
from .models import DEFAULT_BASELINE_MODEL, BillingSettings

log = logging.getLogger(__name__)


class Priced(Protocol):
    """A model with per-token prices (the providers' catalog entries are)."""

    id: str
    provider: str

    def cost_micros(self, usage: Usage) -> Decimal: ...


@dataclass(frozen=True, slots=True)
class CallFacts:
    tenant_id: int
    api_key_id: str | None
    request_id: str
    endpoint: str
    status: int                      # the status the client saw (499: it hung up first)
    price_per_call_cents: int        # the tenant's plan
    model_requested: str = ""
    served: Priced | None = None     # the model that answered, or that we paid for
    usage: Usage = Usage()           # tokens the provider charged us for
    cache: str = "off"               # miss | exact | semantic | off
    replayed: Usage | None = None    # a cache hit: the tokens of the answer it replayed
    replayed_model: str = ""         # a cache hit: its answer's model, named even when it left the catalog
    cache_similarity: float | None = None
    cache_entry_id: int | None = None
    baseline: Priced | None = None   # the tenant's baseline model, None if not in the catalog
    stream: bool = False
    error_type: str = ""
    attempts: int = 1
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    prompt: str | None = None        # only when the tenant logs prompts
    routing: "RoutingFacts | None" = None  # when the router or speculation took part
    # When the call came in: its row's time, and part of the ledger's key, so the journal's
    # copy of the row and the row committed later are one row (None: when written).
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RoutingFacts:
    """How the router and speculation served a call. Their costs are parts of the call's
    provider cost: the draft, the strong call (even cancelled), and the judge."""

    route: str = ""
    reason: str = ""
    predicted_quality: float | None = None
    speculation: str = ""
    outcome: str = ""
    judge: str = ""
    judge_score: float | None = None
    draft_cost_micros: Decimal = Decimal(0)
    strong_cost_micros: Decimal = Decimal(0)
    judge_cost_micros: Decimal = Decimal(0)


def billable(facts: CallFacts) -> bool:
    """Only a call the client received in full is billed."""
    return facts.status == 200


# The endpoints a baseline (chat) model can serve; for the others it is no alternative.
CHAT_ENDPOINTS = frozenset({"chat.completions", "messages"})


def ledger_row(*, facts: CallFacts) -> dict:
    charged = billable(facts)
    hit = facts.cache in ("exact", "semantic")
    provider_usage = Usage() if hit else facts.usage
    provider_cost = _provider_cost(facts, provider_usage)
    return {
        "tenant_id": facts.tenant_id,
        "api_key_id": facts.api_key_id,
        "request_id": facts.request_id,
        "endpoint": facts.endpoint,
        "model_requested": facts.model_requested,
        "model_served": facts.served.id if facts.served else facts.replayed_model,
        "provider": facts.served.provider if facts.served else "",
        "stream": facts.stream,
        "prompt_tokens": provider_usage.prompt_tokens,
        "completion_tokens": provider_usage.completion_tokens,
        "provider_cost_micros": provider_cost,
        "counterfactual_cost_micros": _counterfactual(facts, hit, provider_cost) if charged else Decimal(0),
        "baseline_model": facts.baseline.id if facts.baseline else "",
        "price_cents": facts.price_per_call_cents if charged else 0,
        "billable": charged,
        "status_code": facts.status,
        "error_type": facts.error_type,
        "cache": facts.cache,
        "cache_similarity": facts.cache_similarity,
        "cache_entry_id": facts.cache_entry_id,
        "attempts": max(facts.attempts, 1),
        "latency_ms": facts.latency_ms,
        "ttft_ms": facts.ttft_ms,
        "created_at": facts.created_at,
        "prompt": facts.prompt,
        **_routing_columns(facts.routing or RoutingFacts()),
    }


def speculated_cost(r: RoutingFacts) -> Decimal:
    """A speculated call's provider cost: the draft, the strong call (whole or cancelled)
    and the judge, whichever answer was served."""
    return r.draft_cost_micros + r.strong_cost_micros + r.judge_cost_micros


def _counterfactual(facts: CallFacts, hit: bool, provider_cost: Decimal) -> Decimal:
    """What the tenant would have paid its baseline provider for the answer it got. A call
    the baseline cannot make (embeddings) had no cheaper way round it: no saving claimed."""
    if facts.endpoint not in CHAT_ENDPOINTS:
        return provider_cost
    if facts.baseline is None:
        return Decimal(0)
    return facts.baseline.cost_micros((facts.replayed or Usage()) if hit else facts.usage)


def _provider_cost(facts: CallFacts, usage: Usage) -> Decimal:
    if facts.routing is not None and facts.routing.speculation:
        return speculated_cost(facts.routing)
    return facts.served.cost_micros(usage) if facts.served else Decimal(0)


def _routing_columns(r: RoutingFacts) -> dict:
    return {
        "route": r.route, "route_reason": r.reason, "predicted_quality": r.predicted_quality,
        "speculation": r.speculation, "speculation_outcome": r.outcome,
        "judge": r.judge, "judge_score": r.judge_score, "draft_cost_micros": r.draft_cost_micros,
        "strong_cost_micros": r.strong_cost_micros, "judge_cost_micros": r.judge_cost_micros,
    }


@dataclass(frozen=True, slots=True)
class Promise:
    """A call's row as the journal holds it, with the facts it was built from: recording
    the same facts writes this row instead of building and normalising it again."""

    facts: CallFacts
    row: dict                         # normalised (apps.billing.ledger)
    segment: journal.Segment | None   # None: the journal's disk failed


def call_promise(*, facts: CallFacts) -> Promise:
    """The call's row in the journal, before the client has the answer's last byte, so
    that it outlives this process (apps.billing.journal); if the journal's disk failed,
    the row is still written by call_record."""
    row = normalise(ledger_row(facts=facts))
    try:
        segment = journal.journal.promise(row)
    except OSError:
        log.exception("ledger journal not written for call %s", facts.request_id)
        segment = None
    return Promise(facts, row, segment)


async def call_record(*, facts: CallFacts, promised: Promise | None = None) -> None:
    """Writes the call's one ledger row (committed, or durably spooled), then forgets
    its promise in the journal. The promised row when the facts are still those it was
    built from (its created_at, hence its key in the ledger, is the same either way)."""
    same = promised is not None and promised.facts == facts
    await writer().enqueue(promised.row if same else normalise(ledger_row(facts=facts)))
    if promised is not None and promised.segment is not None:
        journal.journal.settle(promised.segment)


def _baseline_model(tenant_id: int) -> str:
    found = BillingSettings.objects.for_tenant(tenant_id).values_list("baseline_model", flat=True).first()
    return found or DEFAULT_BASELINE_MODEL


_baselines = Snapshots(_baseline_model, lambda: settings.AKA_KEY_CACHE_TTL)


async def baseline_model(*, tenant_id: int) -> str:
    """The tenant's baseline model id, as fresh as its API key's snapshot."""
    return await _baselines.aget(tenant_id)


def billing_settings_update(*, tenant, baseline_model: str) -> BillingSettings:
    found, _ = BillingSettings.objects.for_tenant(tenant).update_or_create(
        tenant=tenant, defaults={"baseline_model": baseline_model})
    return found
