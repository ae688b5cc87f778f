"""The dashboard's reads: a period's numbers from the rollups plus the ledger's tail,
the call log, and the staff console's per-tenant figures."""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.db import connection
from django.db.models import Subquery, Value
from django.db.models.expressions import RawSQL
from django.db.models.functions import Greatest
from django.http import Http404
from django.utils import timezone

from apps.billing.models import DEFAULT_BASELINE_MODEL, BillingSettings, CallRecord
from apps.cache.models import CacheEntry
from apps.core.paging import first_page, page_after
from apps.routing import selectors as feedback

from .latency import BOUNDS, percentile
from .models import CallRollup, RollupState
from .rollups import MODEL_SQL, hour_floor, ledger_latency_sql, ledger_rolled_sql

HIT = ("exact", "semantic")
LOOKED_UP = ("miss", "exact", "semantic")
# The speculation outcome that means the cheap draft was served (apps/routing writes it).
ACCEPTED = "accepted"
MICROS = Decimal(1_000_000)
OBSERVED = "30d"   # the period of the observed wrong-hit rate shown with the cache settings


def observed_wrong_hits(*, tenant) -> dict:
    """Semantic hits in the last 30 days (from the rollups, as the overview counts them),
    and the share the tenant's feedback called wrong: shown beside the settings that
    decide them (the page and the API)."""
    period = period_of(key=OBSERVED)
    hits = overview(tenant=tenant, period=period).semantic
    wrong = judged_wrong_hits(tenant=tenant, since=period.start).count()
    return {"semantic_hits_30d": hits, "semantic_hits_judged_wrong_30d": wrong,
            "observed_wrong_hit_rate": round(wrong / hits, 4) if hits else None}


def judged_wrong_hits(*, tenant, since: datetime):
    """The tenant's semantic hits since `since` that its feedback called wrong (its few
    negative verdicts, read as a subquery)."""
    return CallRecord.objects.for_tenant(tenant).filter(
        created_at__gte=since, cache=CallRecord.Cache.SEMANTIC,
        request_id__in=feedback.negative_request_ids(tenant=tenant, since=since))


@dataclass(frozen=True)
class Period:
    key: str          # today | 7d | 30d | custom
    start: datetime   # an hour boundary
    end: datetime
    step: timedelta   # chart resolution
    label: str


PERIODS = {"today": "Today", "7d": "7 days", "30d": "30 days"}
# A custom period's longest span: its chart has a point a day, and a span of centuries
# drew 740,000 points per chart.
CUSTOM_DAYS = 366


def period_of(*, key: str = "7d", start: date | None = None, end: date | None = None,
              now: datetime | None = None) -> Period:
    """Today (since midnight UTC), the last 7 or 30 days, or whole days `start`..`end`
    (ending today at the latest, and at most CUSTOM_DAYS long: its last ones)."""
    now = now or timezone.now()
    if key == "custom" and start and end:
        end = min(end, now.date())
        if (end - start).days >= CUSTOM_DAYS:
            start = end - timedelta(days=CUSTOM_DAYS - 1)
    if key == "custom" and start and end and start <= end:
        begin = datetime.combine(start, time(), tzinfo=now.tzinfo)
        finish = min(datetime.combine(end + timedelta(days=1), time(), tzinfo=now.tzinfo), now)
        step = timedelta(hours=1) if finish - begin <= timedelta(days=2) else timedelta(days=1)
        return Period("custom", begin, max(finish, begin), step, f"{start:%b %d} – {end:%b %d}")
    if key == "today":
        return Period("today", now.replace(hour=0, minute=0, second=0, microsecond=0), now, timedelta(hours=1), "Today")
    if key == "30d":
        return Period("30d", hour_floor(now) - timedelta(days=30), now, timedelta(days=1), "30 days")
    return Period("7d", hour_floor(now) - timedelta(days=7), now, timedelta(hours=6), "7 days")


# The period's rows: rollups for the hours they hold, the ledger (grouped alike) after that.
_STATE = """
WITH state AS (
  SELECT COALESCE((SELECT through FROM dashboard_rollupstate WHERE id = 1), '-infinity'::timestamptz) AS through
)"""
_ROLLUP_HOURS = "tenant_id = %(tenant)s AND hour >= %(start)s AND hour < LEAST(%(end)s, (SELECT through FROM state))"
_TAIL = {"since": "GREATEST(%(start)s, (SELECT through FROM state))", "until": "%(end)s"}
_SERIES = _STATE + f""", rows AS (
  SELECT hour, model, cache, outcome, billable, calls, errors, provider_cost_micros, counterfactual_cost_micros,
         price_cents
  FROM dashboard_callrollup WHERE {_ROLLUP_HOURS}
  UNION ALL
  SELECT hour, model, cache, outcome, billable, calls, errors, provider_cost_micros, counterfactual_cost_micros,
         price_cents
  FROM ({ledger_rolled_sql(one_tenant=True, **_TAIL)}) AS tail
)
SELECT date_bin(%(step)s, hour, %(start)s) AS t, model, cache, outcome, billable, sum(calls), sum(errors),
       sum(provider_cost_micros), sum(counterfactual_cost_micros), sum(price_cents)
FROM rows GROUP BY 1, 2, 3, 4, 5
"""
_HISTOGRAM = _STATE + f""", rows AS (
  SELECT latency_hist FROM dashboard_latencyrollup WHERE {_ROLLUP_HOURS}
  UNION ALL
  SELECT latency_hist FROM ({ledger_latency_sql(one_tenant=True, **_TAIL)}) AS tail
)
SELECT h.key::int, sum(h.value::bigint) FROM rows, jsonb_each_text(rows.latency_hist) AS h GROUP BY 1
"""


@dataclass
class Point:
    t: datetime
    calls: int = 0
    hits: int = 0
    provider_usd: Decimal = Decimal(0)
    counterfactual_usd: Decimal = Decimal(0)


@dataclass
class Overview:
    period: Period
    baseline_model: str
    calls: int = 0
    errors: int = 0
    billable: int = 0
    lookups: int = 0
    exact: int = 0
    semantic: int = 0
    speculated: int = 0
    accepted: int = 0
    provider_usd: Decimal = Decimal(0)
    counterfactual_usd: Decimal = Decimal(0)
    paid_usd: Decimal = Decimal(0)
    p50_ms: float | None = None
    p95_ms: float | None = None
    models: list[tuple[str, int, float]] = field(default_factory=list)   # (model, calls, share)
    series: list[Point] = field(default_factory=list)

    @property
    def saving_usd(self) -> Decimal:
        return self.counterfactual_usd - self.provider_usd

    @property
    def reduction_factor(self) -> float | None:
        """How many times cheaper than the baseline; None when nothing was paid either way."""
        if self.provider_usd > 0:
            return float(self.counterfactual_usd / self.provider_usd)
        return None

    @property
    def hits(self) -> int:
        return self.exact + self.semantic

    def rate(self, part: int, whole: int) -> float | None:
        return part / whole if whole else None

    @property
    def hit_rate(self):
        return self.rate(self.hits, self.lookups)

    @property
    def exact_rate(self):
        return self.rate(self.exact, self.lookups)

    @property
    def semantic_rate(self):
        return self.rate(self.semantic, self.lookups)

    @property
    def accept_rate(self):
        return self.rate(self.accepted, self.speculated)


def baseline_model_of(*, tenant) -> str:
    found = BillingSettings.objects.for_tenant(tenant).values_list("baseline_model", flat=True).first()
    return found or DEFAULT_BASELINE_MODEL


def overview(*, tenant, period: Period, baseline_model: str = "") -> Overview:
    """The period's numbers, equal to the ledger's for the same rows (latency percentiles
    within the 10% of apps.dashboard.latency)."""
    params = {"tenant": tenant.pk, "start": period.start, "end": period.end, "step": period.step, "bounds": BOUNDS}
    result = Overview(period=period, baseline_model=baseline_model)
    points: dict[datetime, Point] = {}
    per_model: dict[str, int] = defaultdict(int)
    with connection.cursor() as cursor:
        cursor.execute(_SERIES, params)
        rows = cursor.fetchall()
        cursor.execute(_HISTOGRAM, params)
        hist = {int(bucket): int(n) for bucket, n in cursor.fetchall()}
    for t, model, cache, outcome, billable, calls, errors, provider, counterfactual, price in rows:
        calls = int(calls)
        point = points.setdefault(t, Point(t))
        point.calls += calls
        point.provider_usd += provider / MICROS
        point.counterfactual_usd += counterfactual / MICROS
        result.calls += calls
        result.errors += int(errors)
        result.billable += calls if billable else 0
        result.provider_usd += provider / MICROS
        result.counterfactual_usd += counterfactual / MICROS
        result.paid_usd += Decimal(int(price)) / 100
        if cache in LOOKED_UP:
            result.lookups += calls
        if cache == "exact":
            result.exact += calls
        elif cache == "semantic":
            result.semantic += calls
        if cache in HIT:
            point.hits += calls
        if outcome:
            result.speculated += calls
            result.accepted += calls if outcome == ACCEPTED else 0
        per_model[model or "(none)"] += calls
    result.models = [(m, n, n / result.calls) for m, n in sorted(per_model.items(), key=lambda kv: (-kv[1], kv[0]))]
    result.series = _filled(points, period)
    result.p50_ms, result.p95_ms = percentile(hist, 0.50), percentile(hist, 0.95)
    return result


def _filled(points: dict[datetime, Point], period: Period) -> list[Point]:
    """One point per step of the period, empty steps included (a chart's x axis is time)."""
    out, t = [], period.start
    while t < period.end:
        out.append(points.get(t, Point(t)))
        t += period.step
    return out


# --- the call log -----------------------------------------------------------------------

PAGE_SIZE = 50


def calls_page(*, calls, before: tuple[datetime, int] | None = None, size: int = PAGE_SIZE):
    """A page of filtered calls, newest first, after the cursor `before` (created_at, id)
    of the previous page's last row: no OFFSET and no count, so page 1000 costs page 1."""
    return first_page(page_after(calls, before, newest_first=True), size)


def calls_of(*, tenant):
    return CallRecord.objects.for_tenant(tenant).select_related("api_key")


def access_call(*, tenant, request_id: str) -> CallRecord:
    """The tenant's call with this request id; 404 for another tenant's or an unknown one."""
    found = calls_of(tenant=tenant).filter(request_id=request_id).first()
    if found is None:
        raise Http404("No such call")
    return found


def cache_entry_of(*, tenant, entry_id: int | None) -> CacheEntry | None:
    if entry_id is None:
        return None
    return (CacheEntry.objects.for_tenant(tenant).filter(id=entry_id)
            .only("id", "model", "created_at", "expires_at", "hit_count", "demoted_at", "prompt_text",
                  "tenant_id", "context_key").first())


def models_seen(*, tenant, days: int = 30) -> list[str]:
    """The models of the tenant's calls in the last `days`: the call log's filter choices.
    The rollups name them up to their last refresh, the ledger's tail since then (on the
    tenant and time index), so a model first used this hour is one too."""
    since = timezone.now() - timedelta(days=days)
    rolled = CallRollup.objects.for_tenant(tenant).filter(hour__gte=since).values_list("model", flat=True)
    # GREATEST skips a NULL: before the first refresh the tail is the whole span.
    through = Greatest(Subquery(RollupState.objects.filter(pk=1).values("through")), Value(since))
    tail = (CallRecord.objects.for_tenant(tenant).filter(created_at__gte=through)
            .annotate(model=RawSQL(MODEL_SQL, ())).values_list("model", flat=True))
    return sorted(rolled.union(tail))


# --- the staff console --------------------------------------------------------------------

_TENANTS = """
SELECT t.id, t.slug, t.name, p.name, t.status,
       COALESCE(sum(r.calls), 0), COALESCE(sum(r.calls) FILTER (WHERE r.cache IN ('exact', 'semantic')), 0),
       COALESCE(sum(r.calls) FILTER (WHERE r.cache IN ('miss', 'exact', 'semantic')), 0),
       COALESCE(sum(r.counterfactual_cost_micros), 0), COALESCE(sum(r.provider_cost_micros), 0),
       COALESCE(sum(r.price_cents), 0)
FROM tenants_tenant t JOIN tenants_plan p ON p.id = t.plan_id
LEFT JOIN dashboard_callrollup r ON r.tenant_id = t.id AND r.hour >= %(since)s
GROUP BY t.id, p.name ORDER BY t.id
"""


@dataclass(frozen=True)
class TenantFigures:
    id: int
    slug: str
    name: str
    plan: str
    status: str
    calls: int
    hits: int
    lookups: int
    counterfactual_usd: Decimal
    provider_usd: Decimal
    charged_usd: Decimal

    @property
    def hit_rate(self) -> float | None:
        return self.hits / self.lookups if self.lookups else None

    @property
    def saving_usd(self) -> Decimal:
        return self.counterfactual_usd - self.provider_usd

    @property
    def margin_usd(self) -> Decimal:
        """What we charge minus what the providers charge us."""
        return self.charged_usd - self.provider_usd


STAFF_SORTS = {"calls", "hit_rate", "saving_usd", "margin_usd", "slug", "charged_usd"}


def tenants_figures(*, days: int = 30, sort: str = "-calls") -> list[TenantFigures]:
    """Every tenant's volume, hit rate, saving and margin over the rolled-up hours of the
    last `days` (staff only: across tenants by design)."""
    since = hour_floor(timezone.now()) - timedelta(days=days)
    with connection.cursor() as cursor:
        cursor.execute(_TENANTS, {"since": since})
        rows = [TenantFigures(i, slug, name, plan, status, int(calls), int(hits), int(lookups), cf / MICROS,
                              provider / MICROS, Decimal(int(price)) / 100)
                for i, slug, name, plan, status, calls, hits, lookups, cf, provider, price in cursor.fetchall()]
    key = sort.lstrip("-")
    if key in STAFF_SORTS:
        # Tenants without a value (no lookups: no hit rate) go last either way.
        known = [f for f in rows if getattr(f, key) is not None]
        known.sort(key=lambda f: getattr(f, key), reverse=sort.startswith("-"))
        rows = known + [f for f in rows if getattr(f, key) is None]
    return rows
