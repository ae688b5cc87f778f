"""bench/billing: can billing keep up?

1. The meter outbox at 1,000 billable calls per second for a minute: rows are inserted
   straight into the ledger at that rate (batches of 100 every 0.1 s, spread over
   BENCH_TENANTS tenants), while the outbox runs as beat would run it (every
   AKA_METER_OUTBOX_EVERY seconds) against the Stripe fake. Prints the backlog every
   5 seconds (rows not yet in a window, calls in windows not yet acknowledged), then how
   long the last rows take to be acknowledged once the inserts stop.
2. Period close for one tenant with 1,000,000 billable calls in the period: the rows are
   generated with COPY, collected by the outbox as it would collect them during the month
   (stamped with their window and the draft invoice; timed and shown apart), then the
   period is closed (timed) and the invoice's totals checked against an independent sum.

Run it with `make bench-billing` (the project's Postgres and Redis; DATABASE_URL and
REDIS_URL may point at other databases). Its tenants are named bench-billing-* and
their rows are deleted at the end.
"""

import os
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "akaplatform.settings")
os.environ.setdefault("AKA_STRIPE_FAKE", "1")
os.environ["STRIPE_SECRET_KEY"] = ""  # the bench never talks to Stripe itself

import django  # noqa: E402

django.setup()

import psycopg  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402

from apps.billing import accounts, invoices, outbox  # noqa: E402
from apps.billing.invoices import Period  # noqa: E402
from apps.billing.models import CallRecord, Invoice, MeterWindow  # noqa: E402
from apps.billing.stripe_fake import FakeStripe  # noqa: E402
from apps.core.redis import sync_client  # noqa: E402
from apps.tenants import services as tenant_services  # noqa: E402
from apps.tenants.models import Plan, Tenant  # noqa: E402

RATE = int(os.environ.get("BENCH_RATE", "1000"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "60"))
TENANTS = int(os.environ.get("BENCH_TENANTS", "50"))
CLOSE_ROWS = int(os.environ.get("BENCH_CLOSE_ROWS", "1000000"))
TABLE = CallRecord._meta.db_table
COLUMNS = ["tenant_id", "request_id", "endpoint", "model_requested", "model_served", "provider", "stream",
           "prompt_tokens", "completion_tokens", "provider_cost_micros", "counterfactual_cost_micros", "baseline_model",
           "price_cents", "billable", "status_code", "error_type", "cache", "attempts", "latency_ms"]


def dsn() -> str:
    db = settings.DATABASES["default"]
    from urllib.parse import quote

    return f"postgresql://{db['USER']}@{quote(db['HOST'], safe='')}/{db['NAME']}"


def row(tenant_id: int, cents: int = 10) -> tuple:
    return (tenant_id, "req_" + uuid.uuid4().hex, "chat.completions", "gpt-4o-mini", "gpt-4o-mini", "openai", False,
            20, 30, 21, 550, "gpt-4o", cents, True, 200, "", "miss", 1, 12.5)


def cleanup() -> None:
    ids = list(Tenant.objects.filter(slug__startswith="bench-billing").values_list("pk", flat=True))
    if not ids:
        return
    with connection.cursor() as cur:
        cur.execute(f"DELETE FROM {TABLE} WHERE tenant_id = ANY(%s)", [ids])
        cur.execute(f"DELETE FROM {Invoice._meta.db_table} WHERE tenant_id = ANY(%s)", [ids])
        cur.execute(f"DELETE FROM {MeterWindow._meta.db_table} WHERE tenant_id = ANY(%s)", [ids])
    Tenant.objects.filter(pk__in=ids).delete()


def make_tenants(n: int, prefix: str) -> list[int]:
    for name, cents in (("Starter", 10), ("Growth", 7), ("Scale", 5)):
        Plan.objects.get_or_create(name=name, defaults={"price_per_call_cents": cents})
    ids = []
    for i in range(n):
        tenant, _ = tenant_services.tenant_create(name=f"{prefix} {i}", slug=f"{prefix}-{i}-{uuid.uuid4().hex[:4]}",
                                                  owner_email=f"{prefix}-{i}@bench.invalid", owner_password=None)
        ids.append(tenant.pk)
    return ids


def backlog(tenant_ids: list[int]) -> tuple[int, int, int]:
    """(rows not in a window, calls in windows not acknowledged, calls acknowledged)."""
    with connection.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {TABLE} WHERE billable AND meter_window_id IS NULL AND tenant_id = ANY(%s)",
                    [tenant_ids])
        unstamped = cur.fetchone()[0]
        cur.execute(f"SELECT coalesce(sum(quantity) FILTER (WHERE state <> 'acked'), 0), "
                    f"coalesce(sum(quantity) FILTER (WHERE state = 'acked'), 0) "
                    f"FROM {MeterWindow._meta.db_table} WHERE tenant_id = ANY(%s)", [tenant_ids])
        unacked, acked = cur.fetchone()
    return unstamped, unacked, acked


def insert_at_rate(tenant_ids: list[int], stop: threading.Event, counter: list[int]) -> None:
    """RATE rows per second in batches every 0.1 s, each its own committed transaction."""
    per_batch = max(RATE // 10, 1)
    with psycopg.connect(dsn(), autocommit=True) as conn:
        started = time.monotonic()
        batch = 0
        while not stop.is_set():
            rows = [row(tenant_ids[(counter[0] + i) % len(tenant_ids)]) for i in range(per_batch)]
            with conn.cursor().copy(f"COPY {TABLE} ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                for r in rows:
                    copy.write_row(r)
            counter[0] += per_batch
            batch += 1
            delay = started + batch * 0.1 - time.monotonic()
            if delay > 0:
                time.sleep(delay)


def bench_outbox() -> None:
    print(f"\n1. Meter outbox: {RATE} billable calls/s for {SECONDS} s over {TENANTS} tenants, "
          f"windows of {settings.AKA_METER_WINDOW_SECONDS} s, a run every {settings.AKA_METER_OUTBOX_EVERY} s")
    FakeStripe(sync_client()).reset()
    tenant_ids = make_tenants(TENANTS, "bench-billing")
    accounts.catalog_ensure()
    for tenant_id in tenant_ids:
        accounts.customer_ensure(tenant_id=tenant_id)
    stop, counter = threading.Event(), [0]
    inserter = threading.Thread(target=insert_at_rate, args=(tenant_ids, stop, counter))
    started = time.monotonic()
    inserter.start()
    next_report, worst, run_seconds = started + 5, 0, []
    print(f"{'t (s)':>6} {'inserted':>9} {'not in a window':>16} {'in windows, unacked':>20} {'acked':>9}")
    while True:
        now = time.monotonic()
        if now - started >= SECONDS and not stop.is_set():
            stop.set()
            inserter.join()
            stopped_at = time.monotonic()
            rate = counter[0] / (stopped_at - started)
            print(f"inserts stopped at {stopped_at - started:.1f} s: {counter[0]} rows ({rate:.0f}/s)")
        t0 = time.monotonic()
        outbox.run(max_seconds=settings.AKA_METER_OUTBOX_EVERY * 5)
        run_seconds.append(time.monotonic() - t0)
        unstamped, unacked, acked = backlog(tenant_ids)
        worst = max(worst, unstamped + unacked) if not stop.is_set() else worst
        if time.monotonic() >= next_report:
            print(f"{time.monotonic() - started:6.0f} {counter[0]:9d} {unstamped:16d} {unacked:20d} {acked:9d}")
            next_report += 5
        if stop.is_set() and acked == counter[0]:
            break
        time.sleep(max(0.0, settings.AKA_METER_OUTBOX_EVERY - (time.monotonic() - t0)))
    drained = time.monotonic() - stopped_at
    events = len(FakeStripe(sync_client()).meter_events())
    total = sum(FakeStripe(sync_client()).usage(c) for c in accounts.BillingAccount.objects.unscoped_across_all_tenants()
                .filter(tenant_id__in=tenant_ids).values_list("stripe_customer_id", flat=True))
    print(f"all {counter[0]} calls acknowledged {drained:.1f} s after the inserts stopped; worst backlog while "
          f"inserting: {worst} calls ({worst / RATE:.1f} s of traffic); outbox run: median "
          f"{sorted(run_seconds)[len(run_seconds) // 2]:.2f} s, max {max(run_seconds):.2f} s")
    print(f"meter events sent: {events}; the fake's meter total: {total} (ledger: {counter[0]})")


def bench_period_close() -> None:
    print(f"\n2. Period close: one tenant, {CLOSE_ROWS} billable calls in the period")
    [tenant_id] = make_tenants(1, "bench-billing-close")
    period = Period.containing(datetime.now(UTC)).previous()
    t0 = time.monotonic()
    span = (period.end - period.start).total_seconds()
    with psycopg.connect(dsn()) as conn, conn.cursor().copy(
            f"COPY {TABLE} ({', '.join(COLUMNS)}, created_at) FROM STDIN") as copy:
        for i in range(CLOSE_ROWS):
            copy.write_row(row(tenant_id, 10 if i % 3 else 7) + (period.start + timedelta(seconds=span * i / CLOSE_ROWS),))
    with connection.cursor() as cur:
        cur.execute(f"ANALYZE {TABLE}")
    print(f"generated with COPY in {time.monotonic() - t0:.1f} s")
    t0, stamped, at = time.monotonic(), 0, period.start
    while (batch := outbox.collect(at=at)):  # the month's outbox runs, AKA_METER_BATCH rows each here
        stamped += batch
        at += timedelta(hours=6)
    print(f"collected by the outbox (window + draft invoice stamped on each row): {stamped} rows in "
          f"{time.monotonic() - t0:.1f} s ({stamped / (time.monotonic() - t0):.0f} rows/s)")
    t0 = time.monotonic()
    invoice = invoices.period_close(tenant_id=tenant_id, period=period)
    took = time.monotonic() - t0
    with connection.cursor() as cur:
        cur.execute(f"SELECT count(*), sum(price_cents) FROM {TABLE} WHERE tenant_id = %s AND billable "
                    f"AND created_at >= %s AND created_at < %s", [tenant_id, period.start, period.end])
        calls, cents = cur.fetchone()
    print(f"period close: {took:.1f} s for invoice {invoice.number}: {invoice.calls} calls, subtotal "
          f"{invoice.subtotal_cents} c, total {invoice.total_cents} c (ledger: {calls} calls, {cents} c: "
          f"{'match' if (calls, cents) == (invoice.calls, invoice.subtotal_cents) else 'MISMATCH'})")


def main() -> None:
    cleanup()
    try:
        bench_outbox()
        bench_period_close()
    finally:
        t0 = time.monotonic()
        cleanup()
        print(f"\ncleaned up in {time.monotonic() - t0:.1f} s")


if __name__ == "__main__":
    main()
