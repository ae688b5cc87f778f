"""The rollups: the ledger summed per tenant, hour and breakdown (models.CallRollup).

`rollups_refresh` recomputes whole hours from the ledger, inside one transaction that
deletes and re-inserts them, so it is idempotent and safe to run twice or at once (an
advisory lock makes concurrent runs take turns). Each run recomputes only the hours since
the previous run's watermark, plus one hour before it for ledger rows that committed late
(created_at is the call's arrival; its row commits after the call and its batch), plus
any older hour holding rows committed since that run (a spool replayed when a process
came back, hours after its calls: their ids are above the ledger's highest two runs ago,
while created_at keeps the call's time). Only complete hours are rolled up; pages read
the ledger's rows after the watermark themselves (`ledger_tail_sql`), so what they show
is never behind the ledger.
"""

from datetime import UTC, datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from .latency import BOUNDS
from .models import CallRollup, LatencyRollup, RollupState

LATE_ROWS = timedelta(hours=1)
_LOCK = 0x616B6172  # pg_advisory_xact_lock key of the refresh ("akar")

# A call's model as the rollups and the call log's model filter name it: the model that
# served it, else the one asked for (a call that failed before any model answered).
MODEL_SQL = "COALESCE(NULLIF(billing_callrecord.model_served, ''), billing_callrecord.model_requested)"
# The ledger's rows created in [{since}, {until}) as CallRollup rows (tenant filter optional).
_ROLLED = """
SELECT tenant_id, date_trunc('hour', created_at) AS hour,
       {model} AS model, cache, route,
       speculation_outcome AS outcome, billable,
       count(*) AS calls, count(*) FILTER (WHERE status_code >= 400) AS errors,
       sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens,
       sum(provider_cost_micros) AS provider_cost_micros,
       sum(counterfactual_cost_micros) AS counterfactual_cost_micros,
       sum(price_cents) AS price_cents, sum(latency_ms) AS latency_sum_ms
FROM billing_callrecord
WHERE created_at >= {since} AND created_at < {until} {tenant}
GROUP BY 1, 2, 3, 4, 5, 6, 7
"""
COLUMNS = ("tenant_id, hour, model, cache, route, outcome, billable, calls, errors, prompt_tokens, completion_tokens,"
           " provider_cost_micros, counterfactual_cost_micros, price_cents, latency_sum_ms")
# ... and as LatencyRollup rows: per tenant and hour, calls per latency bucket.
_LATENCY = """
SELECT tenant_id, hour, sum(n) AS calls, jsonb_object_agg(bucket, n) AS latency_hist
FROM (SELECT tenant_id, date_trunc('hour', created_at) AS hour,
             width_bucket(latency_ms, %(bounds)s::float8[]) AS bucket, count(*) AS n
      FROM billing_callrecord
      WHERE created_at >= {since} AND created_at < {until} {tenant}
      GROUP BY 1, 2, 3) AS b
GROUP BY 1, 2
"""


def _ledger_sql(template: str, one_tenant: bool, since: str, until: str) -> str:
    return template.format(since=since, until=until, tenant="AND tenant_id = %(tenant)s" if one_tenant else "",
                           model=MODEL_SQL)


def ledger_rolled_sql(*, one_tenant: bool, since: str = "%(since)s", until: str = "%(until)s") -> str:
    """SQL giving CallRollup's COLUMNS from the ledger's rows created in [since, until)
    (SQL expressions), of tenant %(tenant)s only with `one_tenant`."""
    return _ledger_sql(_ROLLED, one_tenant, since, until)


def ledger_latency_sql(*, one_tenant: bool, since: str = "%(since)s", until: str = "%(until)s") -> str:
    """SQL giving LatencyRollup's (tenant_id, hour, calls, latency_hist) from the same
    rows; needs %(bounds)s = latency.BOUNDS."""
    return _ledger_sql(_LATENCY, one_tenant, since, until)


def hour_floor(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def rollups_refresh(*, since: datetime | None = None, now: datetime | None = None) -> datetime:
    """Recomputes every tenant's rollups from `since` (default: the previous watermark
    less LATE_ROWS; everything on the first run) up to the start of the current hour,
    which becomes the watermark, and the older hours that rows came late to. Returns the
    watermark."""
    through = hour_floor(now or timezone.now())
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK])
            cursor.execute("SELECT max(id) FROM billing_callrecord")
            ledger_id = cursor.fetchone()[0]
        state = RollupState.objects.first()
        if since is None and state is not None:
            since = min(state.through, through) - LATE_ROWS
        since = hour_floor(since) if since is not None else datetime(2000, 1, 1, tzinfo=UTC)
        for hour in _late_hours(state.ledger_id_before if state else None, before=since):
            _recompute(hour, hour + timedelta(hours=1))
        _recompute(since, through)
        RollupState.objects.update_or_create(pk=1, defaults={
            "through": through, "refreshed_at": timezone.now(), "ledger_id": ledger_id,
            "ledger_id_before": state.ledger_id if state else ledger_id})
    return through


def _late_hours(seen_id: int | None, *, before: datetime) -> list[datetime]:
    """Hours before `before` holding ledger rows with ids above `seen_id` (the highest
    committed two refreshes ago, RollupState.ledger_id_before): every row committed since
    the previous refresh, as long as an insert's transaction lasts less than a refresh
    interval (a ledger batch takes milliseconds, refreshes are minutes apart). None: that
    refresh saw an empty ledger (or there was none), so every row is new to it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT DISTINCT date_trunc('hour', created_at) FROM billing_callrecord"
                       " WHERE id > %s AND created_at < %s", [seen_id or 0, before])
        return [hour for (hour,) in cursor.fetchall()]


def _recompute(since: datetime, until: datetime) -> None:
    # Every tenant's hours at once: the job is staff tooling over the whole ledger.
    CallRollup.objects.unscoped_across_all_tenants().filter(hour__gte=since, hour__lt=until).delete()
    LatencyRollup.objects.unscoped_across_all_tenants().filter(hour__gte=since, hour__lt=until).delete()
    params = {"since": since, "until": until, "bounds": BOUNDS}
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO dashboard_callrollup ({COLUMNS}) {ledger_rolled_sql(one_tenant=False)}", params)
        cursor.execute("INSERT INTO dashboard_latencyrollup (tenant_id, hour, calls, latency_hist) "
                       + ledger_latency_sql(one_tenant=False), params)
