"""The meter outbox: billable ledger rows to Stripe meter events, each counted once.

Every run (a Celery beat task, every AKA_METER_OUTBOX_EVERY seconds) does two things.

Collect: billable rows not yet stamped are stamped with the window of the current
AKA_METER_WINDOW_SECONDS slot of their tenant (one MeterWindow row per tenant per slot,
its quantity raised in the same transaction) and with the tenant's draft invoice of the
current period. A row is stamped once, so it counts in one window and on one invoice
only; a row committed after its slot ended simply goes into a later window (and, at a
month's end, on the next invoice, exactly where Stripe's meter puts it too).

Send: windows whose slot has ended are sent as one meter event each, identified by
(namespace, tenant, slot). The window row, identifier included, is committed before the
first attempt, so every retry sends the same identifier. Outcomes:
- accepted, or "already exists" (an earlier attempt got through): acked, never sent again;
- 429, 5xx, timeouts: back off (exponentially, capped) and retry; nothing is lost however
  long Stripe is away;
- refused (bad customer...): failed, logged as an alert for a person.
A worker killed mid-send leaves the window `sending` with a lease; the next run resends
it with the same identifier and Stripe deduplicates. Stripe only deduplicates for about
a day, so a window that may have been received more than AKA_METER_DEDUP_HORIZON ago is
not resent but marked uncertain for reconciliation: a double charge is never risked.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper
from django.db.models import F, Q
from django.db.models.functions import Coalesce, Now
from redis.exceptions import RedisError

from apps.core import metrics
from apps.core.redis import sync_client

from . import stripe_api
from .models import BillingAccount, CallRecord, Invoice, MeterWindow

log = logging.getLogger(__name__)

COLLECT_LOCK = 0x616B616D  # pg advisory lock key: one collector at a time
# Stripe accepts timestamps up to 35 days old; keep a margin for a send that takes a while.
MAX_EVENT_AGE = timedelta(days=35) - timedelta(hours=1)
CLAIM_CHUNK = 64
SEND_THREADS = 8


def identifier(tenant_id: int, start: datetime) -> str:
    return f"{stripe_api.namespace()}:t{tenant_id}:w{int(start.timestamp())}"


# --- Collect -----------------------------------------------------------------------------

# One statement: pick unstamped billable rows, add them to their tenant's window of the
# current slot and to its draft invoice of the current period (both made if missing), and
# stamp each row with both; it returns what it stamped per draft. The invoice's number is
# invoices.number()'s format: the id padded to 6 digits, never cut (lpad alone truncates a
# longer id, and two tenants' numbers would collide). A window that has been sent returns
# no row, so its tenant's rows stay unstamped and wait for the next slot. So does an invoice
# already finalized (closed by a worker whose clock runs ahead of the database's): its
# tenant's rows wait, uncounted in any window, until the database's clock is in the next
# period, then go into that period's window and draft as late calls, as Stripe's meter
# counts them.
_COLLECT_SQL = f"""
WITH picked AS (
    SELECT id, created_at, tenant_id FROM {CallRecord._meta.db_table}
    WHERE billable AND meter_window_id IS NULL
    ORDER BY id LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
), counts AS (
    SELECT tenant_id, count(*) AS n FROM picked GROUP BY tenant_id
), drafts AS (
    INSERT INTO {Invoice._meta.db_table} AS i
        (tenant_id, number, period_start, period_end, status, calls, subtotal_cents, tax_rate_bp, tax_cents,
         total_cents, currency, late_calls, stripe_invoice_id, hosted_invoice_url, created_at)
    SELECT tenant_id, 'AKA-' || lpad(tenant_id::text, greatest(6, length(tenant_id::text)), '0') || '-' || %(month)s,
           %(period_start)s, %(period_end)s, 'draft', 0, 0, %(tax_rate_bp)s, 0, 0, %(currency)s, 0, '', '', now()
    FROM counts
    ON CONFLICT (tenant_id, period_start) DO UPDATE SET status = i.status WHERE i.status = 'draft'
    RETURNING id, tenant_id
), windows AS (
    INSERT INTO {MeterWindow._meta.db_table} AS w
        (tenant_id, start, seconds, quantity, identifier, state, attempts, last_error, stripe_customer_id)
    SELECT tenant_id, %(start)s, %(seconds)s, n, %(prefix)s || tenant_id || ':w' || %(slot)s, 'pending', 0, '', ''
    FROM counts JOIN drafts USING (tenant_id)  -- rows without a draft are not stamped: not counted either
    ON CONFLICT (tenant_id, start) DO UPDATE SET quantity = w.quantity + EXCLUDED.quantity
        WHERE w.state = 'pending' AND w.attempts = 0
    RETURNING id, tenant_id
), stamped AS (
    UPDATE {CallRecord._meta.db_table} c SET meter_window_id = windows.id, invoice_id = drafts.id
    FROM picked JOIN windows USING (tenant_id) JOIN drafts USING (tenant_id)
    WHERE c.id = picked.id AND c.created_at = picked.created_at  -- the ledger's key: one partition's row
    RETURNING c.invoice_id, c.price_cents
)
SELECT invoice_id, count(*), sum(price_cents) FROM stamped GROUP BY invoice_id
"""

# The drafts keep running calls and subtotals, so showing one reads one row rather than
# summing its lines. A second statement, as a row is modified once per statement (the
# upsert above already touched the draft).
_DRAFT_TOTALS_SQL = f"""
UPDATE {Invoice._meta.db_table} i SET calls = i.calls + added.calls, subtotal_cents = i.subtotal_cents + added.cents
FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[]) AS added (id, calls, cents) WHERE i.id = added.id
"""


def collect_lock(cur: CursorWrapper) -> bool:
    """Collecting and closing a period take turns (a close waits for a running collect)."""
    cur.execute("SELECT pg_try_advisory_xact_lock(%s)", [COLLECT_LOCK])
    return bool(cur.fetchone()[0])


def collect(*, at: datetime | None = None) -> int:
    """Stamps unstamped billable rows into their tenant's window of the current slot and
    draft invoice of the current period; returns how many. A window that has been sent
    or an invoice already finalized takes no more rows (the ON CONFLICT guards): those rows
    wait for the next slot, or the next period. `at` stands for the database's clock (tests
    and benches replaying a past period)."""
    from .invoices import Period

    seconds = settings.AKA_METER_WINDOW_SECONDS
    with transaction.atomic(), connection.cursor() as cur:
        if not collect_lock(cur):
            return 0
        now = at or _db_now()
        slot = int(now.timestamp()) // seconds * seconds
        period = Period.containing(now)
        cur.execute(_COLLECT_SQL, {
            "batch": settings.AKA_METER_BATCH, "start": datetime.fromtimestamp(slot, tz=UTC),
            "seconds": seconds, "prefix": f"{stripe_api.namespace()}:t", "slot": str(slot), "month": f"{period.start:%Y%m}",
            "period_start": period.start, "period_end": period.end, "tax_rate_bp": settings.AKA_BILLING_TAX_RATE_BP,
            "currency": settings.AKA_BILLING_CURRENCY})
        added = cur.fetchall()
        if added:
            cur.execute(_DRAFT_TOTALS_SQL, [list(column) for column in zip(*added, strict=True)])
        return sum(calls for _, calls, _ in added)


# --- Send --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    id: int
    identifier: str
    customer: str
    quantity: int
    timestamp: int


def _horizon_passed() -> Q:
    return Q(maybe_received_at__lt=Now() - timedelta(seconds=settings.AKA_METER_DEDUP_HORIZON))


def _mark_uncertain() -> None:
    """Windows that may have reached Stripe longer ago than it deduplicates: never resent."""
    due = MeterWindow.objects.unscoped_across_all_tenants().filter(  # the outbox serves every tenant
        _horizon_passed(), state__in=[MeterWindow.State.PENDING, MeterWindow.State.SENDING],
        next_attempt_at__lte=Now())
    for window in due:
        log.error("ALERT billing: meter window %s may have reached Stripe %s and was never acknowledged; "
                  "not resent (Stripe's deduplication may have lapsed): reconcile it", window.identifier,
                  window.maybe_received_at)
    if (n := due.update(state=MeterWindow.State.UNCERTAIN)):
        metrics.METER_EVENTS.labels("uncertain").inc(n)


def claim(limit: int) -> list[Claimed]:
    """Takes up to `limit` due windows of tenants with a Stripe customer, marking each
    `sending` under a lease. A window still `sending` from a dead attempt counts as
    maybe received (from that attempt on)."""
    with transaction.atomic():
        customers = dict(BillingAccount.objects.unscoped_across_all_tenants()
                         .exclude(stripe_customer_id="").values_list("tenant_id", "stripe_customer_id"))
        windows = list(
            MeterWindow.objects.unscoped_across_all_tenants()
            .select_for_update(skip_locked=True)
            .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=Now()),
                    state__in=[MeterWindow.State.PENDING, MeterWindow.State.SENDING],
                    tenant_id__in=list(customers))
            .extra(where=["start + seconds * interval '1 second' <= now()"])
            .order_by("start", "id")[:limit])
        if not windows:
            return []
        now = _db_now()
        oldest = int((now - MAX_EVENT_AGE).timestamp())
        claimed = []
        for w in windows:
            if w.state == MeterWindow.State.SENDING and w.maybe_received_at is None:
                w.maybe_received_at = w.last_attempt_at
            timestamp = int(w.start.timestamp())
            if timestamp < oldest:
                log.warning("meter window %s is older than Stripe accepts; sent with timestamp %s", w.identifier, oldest)
                timestamp = oldest
            w.state, w.attempts, w.last_attempt_at = MeterWindow.State.SENDING, w.attempts + 1, now
            w.next_attempt_at, w.stripe_customer_id, w.event_timestamp = now + _lease(), customers[w.tenant_id], timestamp
            claimed.append(Claimed(w.id, w.identifier, w.stripe_customer_id, w.quantity, timestamp))
        MeterWindow.objects.unscoped_across_all_tenants().bulk_update(
            windows, ["state", "attempts", "last_attempt_at", "next_attempt_at", "maybe_received_at",
                      "stripe_customer_id", "event_timestamp"])
        return claimed


def _lease() -> timedelta:
    """How long an attempt may run before another run may take its window over."""
    return timedelta(seconds=settings.AKA_METER_LEASE_SECONDS)


def _db_now() -> datetime:
    with connection.cursor() as cur:
        cur.execute("SELECT now()")
        now: datetime = cur.fetchone()[0]
        return now


class Pace:
    """At most `rate` sends in any one second across every process (Stripe's live limit is
    1,000 meter events per second), counted in Redis; without Redis, per process."""

    def __init__(self, rate: int) -> None:
        self.rate, self.interval, self.next, self.lock = rate, 1.0 / max(rate, 1), time.monotonic(), threading.Lock()

    def wait(self) -> int:
        """Returns once a send may go; the second (epoch) it was counted in."""
        while True:
            second = int(time.time())
            try:
                sent = int(sync_client().incr(f"billing:meter-rate:{second}"))
                if sent == 1:
                    sync_client().expire(f"billing:meter-rate:{second}", 5)
            except (RedisError, OSError):
                self._wait_locally()
                return int(time.time())
            if sent <= self.rate:
                return second
            time.sleep(max(0.0, second + 1 - time.time()))

    def _wait_locally(self) -> None:
        with self.lock:
            now = time.monotonic()
            delay, self.next = self.next - now, max(self.next, now) + self.interval
        if delay > 0:
            time.sleep(delay)


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(settings.AKA_METER_RETRY_BASE * 2 ** max(attempts - 1, 0), settings.AKA_METER_RETRY_MAX))


def _send(window: Claimed, pace: Pace) -> str:
    """Sends one window and records the outcome; returns it (acked | retry | throttled | failed)."""
    pace.wait()
    windows = MeterWindow.objects.unscoped_across_all_tenants().filter(pk=window.id, state=MeterWindow.State.SENDING)
    try:
        stripe_api.meter_event_send(identifier=window.identifier, customer=window.customer,
                                    value=window.quantity, timestamp=window.timestamp)
        outcome = "acked"
    except stripe_api.AlreadyRecorded:
        outcome = "acked"
        log.info("meter window %s was already recorded by Stripe (an earlier attempt got through)", window.identifier)
    except stripe_api.Retryable as exc:
        outcome = "throttled" if isinstance(exc, stripe_api.Throttled) else "retry"
        if isinstance(exc, stripe_api.KeyRefused):
            log.error("ALERT billing: Stripe refuses our key; meter window %s waits: %s", window.identifier, exc)
        found = windows.first()
        if found is not None:
            # A request turned away (throttled, our key refused) was not recorded; anything
            # else may have been, and the dedup horizon starts.
            unrecorded = isinstance(exc, stripe_api.NotCarriedOut)
            windows.update(state=MeterWindow.State.PENDING, last_error=str(exc)[:2000],
                           next_attempt_at=Now() + _backoff(found.attempts),
                           maybe_received_at=F("maybe_received_at") if unrecorded
                           else Coalesce(F("maybe_received_at"), F("last_attempt_at")))
        metrics.METER_EVENTS.labels(outcome).inc()
        return outcome
    except stripe_api.Refused as exc:
        log.error("ALERT billing: Stripe refused meter window %s (%d calls): %s", window.identifier,
                  window.quantity, exc)
        windows.update(state=MeterWindow.State.FAILED, last_error=str(exc)[:2000])
        metrics.METER_EVENTS.labels("failed").inc()
        return "failed"
    windows.update(state=MeterWindow.State.ACKED, acked_at=Now(), next_attempt_at=None, last_error="")
    metrics.METER_EVENTS.labels("acked").inc()
    return outcome


@dataclass
class RunResult:
    stamped: int = 0
    acked: int = 0
    retried: int = 0
    failed: int = 0


def run(*, max_seconds: float | None = None) -> RunResult:
    """One outbox run: collect, then send what is due until nothing is left, Stripe pushes
    back, or `max_seconds` pass. Safe to run twice or concurrently."""
    result = RunResult(stamped=collect())
    if not stripe_api.enabled():
        return result  # no Stripe: windows wait (and invoices are made from the ledger anyway)
    _mark_uncertain()
    deadline = time.monotonic() + (max_seconds or settings.AKA_METER_OUTBOX_EVERY * 5)
    pace = Pace(settings.AKA_METER_EVENTS_PER_SECOND)
    with ThreadPoolExecutor(SEND_THREADS) as pool:
        while time.monotonic() < deadline:
            batch = claim(CLAIM_CHUNK)
            if not batch:
                break
            outcomes = list(pool.map(lambda w: _send_closing(w, pace), batch))
            result.acked += outcomes.count("acked")
            result.failed += outcomes.count("failed")
            result.retried += outcomes.count("retry") + outcomes.count("throttled")
            if "throttled" in outcomes or "retry" in outcomes:
                break  # Stripe is pushing back or failing: the back-off decides when to try again
    return result


def _send_closing(window: Claimed, pace: Pace) -> str:
    try:
        return _send(window, pace)
    finally:
        connection.close()  # each pool thread has its own connection: hand it back


def backlog() -> dict[str, int]:
    """Billable rows not yet in a window, and windows by state (for ops and the bench)."""
    with connection.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {CallRecord._meta.db_table} WHERE billable AND meter_window_id IS NULL")
        out = {"unstamped_rows": cur.fetchone()[0]}
        cur.execute(f"SELECT state, count(*), coalesce(sum(quantity), 0) FROM {MeterWindow._meta.db_table} GROUP BY state")
        for state, windows, quantity in cur.fetchall():
            out[f"{state}_windows"], out[f"{state}_calls"] = windows, quantity
    return out
