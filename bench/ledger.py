"""bench/ledger: the ledger at scale, 10 million rows over 1,000 tenants.

Builds its own database (`aka_bench_ledger`, dropped and recreated at the start, dropped
at the end unless --keep) on the project's PostgreSQL and migrates it. Then:

1. Insert rate through the real write path on the empty ledger: --probe calls recorded
   through apps.billing.services.call_record (the gateway's front door: the facts of a
   call in, the writer's group-committed batches out), --concurrency at a time.
2. History: --rows ledger rows over --tenants tenants across --months calendar months up
   to now, written with COPY in time order (every tenant's calls interleaved, as the
   gateway writes them), one tenant holding --big-share of them. Each billable row is
   stamped, as the meter outbox would have, with its tenant's meter window and invoice of
   its month: past months' invoices finalized, this month's a draft.
3. The insert rate again, on the full ledger; the ratio to the first says whether it holds.
4. The rollups of the last 32 days refreshed (as beat keeps them), then p50/p95 of the queries the dashboard's
   and the invoice pages run, through the same selectors the views call, for the big
   tenant. Budget: 200 ms each.

    python scripts/services.py run -- .venv/bin/python bench/ledger.py [--rows 10000000] [--keep]

Row counts, sizes, times and the load average are printed as they come; on a shared
2-core machine, latencies are noisy, ratios within one run less so.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "akaplatform.settings")

from bench.dashboard import bench_database_url, drop, recreate  # noqa: E402

BENCH_DB = "aka_bench_ledger"
BUDGET_MS = 200.0
# What the history's rows look like: (model, provider, USD per 1M input, output tokens).
MODELS = [("gpt-4o-mini", "openai", 0.15, 0.6), ("claude-haiku-4-5", "anthropic", 1.0, 5.0),
          ("gpt-4o", "openai", 2.5, 10.0)]
BASELINE = (2.5, 10.0)  # gpt-4o
COPY_COLUMNS = ("created_at, tenant_id, invoice_id, meter_window_id, latency_ms, cache_similarity, prompt_tokens, "
                "completion_tokens, price_cents, status_code, attempts, stream, billable, api_key_id, request_id, "
                "endpoint, model_requested, model_served, provider, baseline_model, cache, error_type, route, "
                "route_reason, speculation, speculation_outcome, judge, provider_cost_micros, "
                "counterfactual_cost_micros, draft_cost_micros")
SLICE_SECONDS = 6 * 3600  # rows are generated and copied six hours at a time


def load() -> str:
    return f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} on {os.cpu_count()} cores"


# --- 1 and 3: the insert rate through the real write path --------------------------------


def insert_rate(tenant_ids: list[int], calls: int, concurrency: int) -> float:
    """Calls per second recorded through billing's front door, `concurrency` at a time."""
    from apps.billing.services import CallFacts, call_record
    from apps.core import pg
    from apps.core.llm import Usage
    from apps.providers.catalog import amodels

    async def run() -> float:
        catalog = await amodels()
        served, baseline = catalog["gpt-4o-mini"], catalog["gpt-4o"]
        rng = np.random.default_rng(len(tenant_ids) + calls)
        tenants = rng.choice(tenant_ids, size=calls)
        tokens = rng.integers(50, 900, size=(calls, 2))
        queue = iter(range(calls))

        async def caller() -> None:
            for i in queue:
                await call_record(facts=CallFacts(
                    tenant_id=int(tenants[i]), api_key_id=None, request_id=f"req_{os.urandom(16).hex()}",
                    endpoint="chat.completions", status=200, price_per_call_cents=10, model_requested="auto",
                    served=served, usage=Usage(int(tokens[i, 0]), int(tokens[i, 1])), cache="miss", baseline=baseline,
                    latency_ms=420.0))

        async def burst(n: int) -> float:
            nonlocal queue
            queue = iter(range(n))
            started = time.perf_counter()
            await asyncio.gather(*(caller() for _ in range(concurrency)))
            return time.perf_counter() - started

        await burst(concurrency * 4)  # warm-up: the pool's connections, the catalog, the writer
        elapsed = await burst(calls)
        await pg.close_pools()
        return calls / elapsed

    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(run())
    finally:
        loop.close()


# --- 2: the history ----------------------------------------------------------------------


def make_tenants(n: int) -> tuple[object, list[int]]:
    """The big tenant (with an owner, through the real service) and n - 1 others (bulk)."""
    from apps.tenants import services
    from apps.tenants.models import Plan, Tenant

    big, _ = services.tenant_create(name="Bench Big", slug="bench-big", owner_email="owner@bench.test",
                                    owner_password="bench-password-1")
    plan = Plan.objects.get(name="Starter")
    others = Tenant.objects.bulk_create(Tenant(name=f"Bench {i}", slug=f"bench-{i}", plan=plan, status="active")
                                        for i in range(1, n))
    return big, [big.pk] + [t.pk for t in others]


def months_of(first: datetime, now: datetime) -> list[datetime]:
    from apps.billing.partitions import month_of, months_after

    out, month = [], month_of(first)
    while month <= month_of(now):
        out.append(datetime(month.year, month.month, 1, tzinfo=UTC))
        month = months_after(month, 1)
    return out


def bills(tenant_ids: list[int], months: list[datetime], now: datetime) -> tuple[np.ndarray, np.ndarray]:
    """An invoice and a meter window per tenant and month, as the outbox would have made
    them (past months' invoices finalized, the current one a draft): arrays [tenant, month]
    of their ids."""
    from django.db import connection

    from apps.billing import outbox
    from apps.billing.invoices import Period

    invoice_ids = np.zeros((len(tenant_ids), len(months)), dtype=np.int64)
    window_ids = np.zeros_like(invoice_ids)
    with connection.cursor() as cur:
        for m, start in enumerate(months):
            period = Period.containing(start)
            status = "draft" if m == len(months) - 1 else "finalized"
            cur.execute(
                "INSERT INTO billing_invoice (tenant_id, number, period_start, period_end, status, calls, subtotal_cents,"
                " tax_rate_bp, tax_cents, total_cents, currency, late_calls, stripe_invoice_id, hosted_invoice_url,"
                " created_at) SELECT t, %s || lpad(t::text, 6, '0') || %s, %s, %s, %s, 0, 0, 0, 0, 0, 'usd', 0, '', '',"
                " %s FROM unnest(%s::bigint[]) AS t RETURNING id",
                ["AKA-", f"-{period.start:%Y%m}", period.start, period.end, status, min(period.end, now),
                 tenant_ids])
            invoice_ids[:, m] = [i for (i,) in cur.fetchall()]
            cur.execute(
                "INSERT INTO billing_meterwindow (tenant_id, start, seconds, quantity, identifier, state, attempts,"
                " last_error, stripe_customer_id) SELECT t, %s, %s, 0, %s || t || ':w' || %s, 'acked', 1, '', ''"
                " FROM unnest(%s::bigint[]) AS t RETURNING id",
                [period.start, int((period.end - period.start).total_seconds()), f"{outbox.namespace()}:t",
                 str(int(period.start.timestamp())), tenant_ids])
            window_ids[:, m] = [i for (i,) in cur.fetchall()]
    return invoice_ids, window_ids


def _lines(rng, times: np.ndarray, tenant_index: np.ndarray, tenant_ids: np.ndarray, month_index: np.ndarray,
           invoice_ids: np.ndarray, window_ids: np.ndarray, big_keys: list[str]) -> str:
    """COPY lines for one slice of calls: cache hits, cheap and strong routes, failures and
    costs in the proportions of apps.dashboard.history."""
    n = len(times)
    kind = rng.choice(np.array(["exact", "semantic", "miss", "off"]), size=n, p=[0.12, 0.25, 0.60, 0.03])
    failed = rng.random(n) < 0.03
    kind = np.where(failed, "miss", kind)
    hit = (kind == "exact") | (kind == "semantic")
    model = np.where(hit | (rng.random(n) < 0.7), rng.choice([0, 1], size=n, p=[0.75, 0.25]), 2)
    tokens_in = np.maximum(rng.lognormal(5.5, 0.7, n).astype(np.int64), 8)
    tokens_out = np.maximum(rng.lognormal(4.8, 0.8, n).astype(np.int64), 1)
    prices = np.array([m[2:] for m in MODELS])
    cost = np.where(hit, 0.0, tokens_in * prices[model, 0] + tokens_out * prices[model, 1]).round(4)
    counterfactual = np.where(failed, 0.0, tokens_in * BASELINE[0] + tokens_out * BASELINE[1]).round(4)
    latency = np.where(hit, rng.lognormal(3.2, 0.4, n), rng.lognormal(6.4, 0.6, n)).round(2)
    similarity = np.where(kind == "semantic", rng.uniform(0.90, 0.995, n).round(4).astype(str),
                          np.where(kind == "exact", "1.0", r"\N"))
    cheap = model < 2
    billable = ~failed
    invoice = np.where(billable, invoice_ids[tenant_index, month_index].astype(str), r"\N")
    window = np.where(billable, window_ids[tenant_index, month_index].astype(str), r"\N")
    keys = np.array(big_keys + [r"\N"])[np.where(tenant_index == 0, rng.integers(0, len(big_keys), n), len(big_keys))]
    request_ids = os.urandom(16 * n).hex()
    stamps = [datetime.fromtimestamp(t, UTC).isoformat() for t in times]
    names = [m[0] for m in MODELS]
    providers = [m[1] for m in MODELS]
    out = []
    for i in range(n):
        m = int(model[i])
        ok = billable[i]
        routed = not hit[i]
        out.append("\t".join((
            stamps[i], str(tenant_ids[tenant_index[i]]), invoice[i], window[i], str(latency[i]), similarity[i],
            str(tokens_in[i] if routed else 0), str(tokens_out[i] if routed else 0), "10" if ok else "0",
            "200" if ok else "502", "1" if ok else "3", "t" if i % 5 < 2 else "f", "t" if ok else "f", keys[i],
            "req_" + request_ids[32 * i:32 * i + 32], "chat.completions", "auto" if routed else names[m], names[m],
            providers[m], "gpt-4o", str(kind[i]), "" if ok else "upstream_error",
            ("cheap" if cheap[i] else "strong") if routed else "",
            ("predicted quality meets the floor" if cheap[i] else "predicted quality below the floor") if routed else "",
            "cascade" if routed and cheap[i] else "", "accepted" if routed and cheap[i] else "",
            "heuristic" if routed and cheap[i] else "", f"{cost[i]:.4f}", f"{counterfactual[i]:.4f}",
            f"{cost[i]:.4f}" if routed and cheap[i] else "0")))
    return "\n".join(out) + "\n"


def history(*, tenant_ids: list[int], rows: int, months: list[datetime], now: datetime, big_share: float,
            big_keys: list[str], invoice_ids: np.ndarray, window_ids: np.ndarray,
            deadline: float) -> tuple[int, float]:
    """Writes `rows` calls with COPY, an equal share in each month, newest month first and
    in time order within a month; the current month gets a whole month's share in the
    days it has had, so its partition (where the gateway inserts) and its draft invoices
    are as full as at a month's end. Stops early at `deadline` (time.monotonic()), with
    the oldest months short. Returns (rows written, seconds)."""
    from django.db import connection

    from apps.billing.partitions import months_after

    rng = np.random.default_rng(7)
    ids = np.array(tenant_ids)
    weights = np.full(len(ids), (1 - big_share) / (len(ids) - 1))
    weights[0] = big_share
    written, started, report = 0, time.perf_counter(), time.perf_counter()
    with connection.cursor() as cursor:
        raw = cursor.cursor  # psycopg's own cursor: COPY
        for m, start in reversed(list(enumerate(months))):
            following = months_after(start.date(), 1)
            first = start.timestamp()
            last = min(datetime(following.year, following.month, 1, tzinfo=UTC), now).timestamp()
            share = rows * (m + 1) // len(months) - rows * m // len(months)
            done = 0
            for lo in np.arange(first, last, SLICE_SECONDS):
                if time.monotonic() > deadline:
                    return written + done, time.perf_counter() - started
                hi = min(lo + SLICE_SECONDS, last)
                n = int(round(share * (hi - first) / (last - first))) - done
                if n <= 0:
                    continue
                times = np.sort(rng.uniform(lo, hi, n))
                tenant_index = rng.choice(len(ids), size=n, p=weights)
                with raw.copy(f"COPY billing_callrecord ({COPY_COLUMNS}) FROM STDIN") as copy:
                    copy.write(_lines(rng, times, tenant_index, ids, np.full(n, m), invoice_ids, window_ids,
                                      big_keys))
                done += n
                if time.perf_counter() - report > 60:
                    report = time.perf_counter()
                    print(f"  ... {written + done:,} rows in {report - started:.0f}s "
                          f"({(written + done) / (report - started):,.0f}/s); {load()}", flush=True)
            written += done
    return written, time.perf_counter() - started


# --- 4: the dashboard's and the invoice pages' queries -----------------------------------


def timed_queries(big, keys: list[str], now: datetime, repeat: int) -> list[tuple[str, float, float, str]]:
    from django.http import QueryDict

    from apps.billing import selectors as billing
    from apps.billing.models import CallRecord, Invoice
    from apps.dashboard import selectors as dashboard
    from apps.dashboard.forms import CallFilter
    from apps.tenants import selectors as tenants

    baseline = dashboard.baseline_model_of(tenant=big)
    old = CallRecord.objects.for_tenant(big).filter(created_at__lt=now - timedelta(days=70)).order_by(
        "-created_at", "-id").first()
    draft = Invoice.objects.for_tenant(big).get(status=Invoice.Status.DRAFT)
    final = Invoice.objects.for_tenant(big).exclude(status=Invoice.Status.DRAFT).order_by("-period_start")[0]
    middle = billing.invoice_lines(invoice=final).order_by("created_at", "id")[final_lines(final) // 2]

    def calls_filtered(query: str):
        filters = CallFilter(QueryDict(query), queryset=dashboard.calls_of(tenant=big),
                             keys=tenants.api_key_list(tenant=big), models=dashboard.models_seen(tenant=big))
        assert filters.is_valid(), filters.errors
        return dashboard.calls_page(calls=filters.qs)

    def invoice_page(invoice, after=None):
        found = billing.access_invoice(tenant=big, invoice_id=invoice.pk)
        lines = billing.invoice_lines_page(invoice=found, after=after)
        return lines, billing.invoice_amounts(invoice=found)

    queries = [
        ("overview, today", "dashboard",
         lambda: dashboard.overview(tenant=big, period=dashboard.period_of(key="today"), baseline_model=baseline)),
        ("overview, 7 days", "dashboard",
         lambda: dashboard.overview(tenant=big, period=dashboard.period_of(key="7d"), baseline_model=baseline)),
        ("overview, 30 days", "dashboard",
         lambda: dashboard.overview(tenant=big, period=dashboard.period_of(key="30d"), baseline_model=baseline)),
        ("calls, first page", "dashboard", lambda: calls_filtered("")),
        ("calls, page 70 days back", "dashboard",
         lambda: dashboard.calls_page(calls=dashboard.calls_of(tenant=big), before=(old.created_at, old.pk))),
        ("calls, cache=semantic & model", "dashboard", lambda: calls_filtered("cache=semantic&model=gpt-4o-mini")),
        ("calls, failed", "dashboard", lambda: calls_filtered("status=error")),
        ("calls, one key, last day", "dashboard",
         lambda: calls_filtered(f"key={keys[0]}&since={(now - timedelta(days=1)):%Y-%m-%dT%H:%M}")),
        ("call detail, 70 days old", "dashboard",
         lambda: dashboard.access_call(tenant=big, request_id=old.request_id)),
        ("invoice list (draft's running total)", "invoice",
         lambda: [billing.invoice_amounts(invoice=i) for i in billing.invoice_list(tenant=big)]),
        ("draft invoice, first lines + totals", "invoice", lambda: invoice_page(draft)),
        ("finalized invoice, first lines", "invoice", lambda: invoice_page(final)),
        ("finalized invoice, lines from the middle", "invoice",
         lambda: invoice_page(final, after=(middle.created_at, middle.pk))),
    ]
    out = []
    for name, page, query in queries:
        for _ in range(2):
            query()
        samples = []
        for _ in range(repeat):
            started = time.perf_counter()
            query()
            samples.append((time.perf_counter() - started) * 1000)
        samples.sort()
        p95 = samples[min(len(samples) - 1, int(round(0.95 * (len(samples) - 1))))]
        out.append((name, statistics.median(samples), p95, page))
    return out


def final_lines(invoice) -> int:
    from apps.billing.models import CallRecord

    return CallRecord.objects.for_tenant(invoice.tenant_id).filter(invoice=invoice).count()


def sizes() -> list[tuple[str, int, int, int]]:
    """(partition, rows, table bytes, index bytes) per partition of the ledger."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT c.relname, c.reltuples::bigint, pg_table_size(c.oid), pg_indexes_size(c.oid) "
                    "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "WHERE i.inhparent = 'billing_callrecord'::regclass ORDER BY c.relname")
        return cur.fetchall()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--tenants", type=int, default=1_000)
    parser.add_argument("--months", type=int, default=6, help="calendar months of history, the current one included")
    parser.add_argument("--big-share", type=float, default=0.10, help="the big tenant's share of the rows")
    parser.add_argument("--probe", type=int, default=20_000, help="calls recorded to measure the insert rate")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--max-load-minutes", type=float, default=0,
                        help="stop writing the history after this long (0: never), and measure what was built")
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args()
    admin, url = bench_database_url(BENCH_DB)  # the project's PostgreSQL; this bench's own database on it
    recreate(admin, BENCH_DB)
    os.environ["DATABASE_URL"] = url
    os.environ["AKA_LEDGER_SPOOL_DIR"] = str(ROOT / ".local" / "spool" / f"ledger-{BENCH_DB}")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, connections

    from apps.billing import partitions
    from apps.dashboard.rollups import rollups_refresh
    from apps.providers.catalog import sync_from_seed
    from apps.tenants import services

    try:
        started = time.perf_counter()
        call_command("migrate", verbosity=0)
        sync_from_seed()
        print(f"migrated {BENCH_DB} in {time.perf_counter() - started:.1f}s; {load()}", flush=True)
        now = datetime.now(UTC)
        months = months_of(now - timedelta(days=31 * (args.months - 1)), now)[-args.months:]
        for month in months:
            if partitions.month_of(month) not in partitions.existing():
                partitions.create(partitions.month_of(month))
        big, tenant_ids = make_tenants(args.tenants)
        keys = [str(services.api_key_issue(tenant=big, name=f"key {i}")[0].pk) for i in range(5)]
        print(f"{len(tenant_ids):,} tenants; months {months[0]:%Y-%m} to {months[-1]:%Y-%m}; "
              f"{len(partitions.existing())} monthly partitions and DEFAULT", flush=True)

        before = insert_rate(tenant_ids, args.probe, args.concurrency)
        print(f"\ninsert rate, empty ledger: {before:,.0f} calls/s ({args.probe:,} calls through "
              f"services.call_record, {args.concurrency} at a time); {load()}", flush=True)

        invoice_ids, window_ids = bills(tenant_ids, months, now)
        print(f"\nwriting {args.rows:,} rows with COPY ({args.big_share:.0%} for bench-big) ...", flush=True)
        deadline = time.monotonic() + (args.max_load_minutes * 60 or float("inf"))
        with connection.cursor() as cursor:  # vacuumed once, after the load, instead of during it
            for name in partitions.existing().values():
                cursor.execute(f"ALTER TABLE {name} SET (autovacuum_enabled = off)")
        written, seconds = history(tenant_ids=tenant_ids, rows=args.rows, months=months, now=now,
                                   big_share=args.big_share, big_keys=keys, invoice_ids=invoice_ids,
                                   window_ids=window_ids, deadline=deadline)
        print(f"COPY of {written:,} rows in {seconds:.0f}s ({written / seconds:,.0f} rows/s); {load()}", flush=True)
        if written < args.rows:
            print(f"STOPPED SHORT: --max-load-minutes {args.max_load_minutes:g} reached after {written:,} of "
                  f"{args.rows:,} rows (newest months first: the oldest are short or empty)", flush=True)
        with connection.cursor() as cursor:
            for name in partitions.existing().values():
                cursor.execute(f"ALTER TABLE {name} RESET (autovacuum_enabled)")
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE billing_callrecord")
        print(f"VACUUM ANALYZE in {time.perf_counter() - started:.0f}s", flush=True)
        with connection.cursor() as cursor:  # the totals the outbox (drafts) and period close keep
            cursor.execute("UPDATE billing_invoice i SET calls = l.calls, subtotal_cents = l.cents, total_cents = l.cents"
                           " FROM (SELECT invoice_id, count(*) AS calls, sum(price_cents) AS cents FROM billing_callrecord"
                           " WHERE invoice_id IS NOT NULL GROUP BY invoice_id) l WHERE i.id = l.invoice_id")

        print(f"\n{'partition':<30} {'rows':>12} {'table MB':>10} {'index MB':>10}")
        total_rows = total_table = total_index = 0
        for name, rows, table, index in sizes():
            print(f"{name:<30} {max(rows, 0):>12,} {table / 2**20:>10,.0f} {index / 2**20:>10,.0f}")
            total_rows, total_table, total_index = total_rows + max(rows, 0), total_table + table, total_index + index
        with connection.cursor() as cursor:
            cursor.execute("SELECT avg(pg_column_size(r.*)) FROM billing_callrecord r TABLESAMPLE SYSTEM (0.2)")
            row_bytes = cursor.fetchone()[0]
            cursor.execute("SELECT count(*) FROM billing_callrecord WHERE tenant_id = %s", [big.pk])
            big_rows = cursor.fetchone()[0]
        print(f"{'all':<30} {total_rows:>12,} {total_table / 2**20:>10,.0f} {total_index / 2**20:>10,.0f}")
        print(f"average row {row_bytes:.0f} bytes (column data and row header; the heap adds 4 bytes of line "
              f"pointer and page overhead); bench-big holds {big_rows:,} rows", flush=True)

        after = insert_rate(tenant_ids, args.probe, args.concurrency)
        print(f"\ninsert rate, full ledger: {after:,.0f} calls/s; after / before = {after / before:.2f} "
              f"(holds if near 1); {load()}", flush=True)

        started = time.perf_counter()
        rollups_refresh(since=now - timedelta(days=32))  # what the overview's longest period (30 days) reads
        print(f"\nrollups: the last 32 days refreshed in {time.perf_counter() - started:.0f}s", flush=True)
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE dashboard_callrollup")
            cursor.execute("VACUUM ANALYZE dashboard_latencyrollup")

        results = timed_queries(big, keys, now, args.repeat)
        print(f"\nqueries of the dashboard and the invoice pages for bench-big ({big_rows:,} calls), through "
              f"their selectors, {args.repeat} runs each (ms); {load()}:\n")
        print(f"{'query':<42} {'page':<10} {'p50':>8} {'p95':>8}  under {BUDGET_MS:.0f} ms")
        for name, p50, p95, page in results:
            print(f"{name:<42} {page:<10} {p50:>8.1f} {p95:>8.1f}  {'yes' if p95 < BUDGET_MS else 'NO'}")
        worst = max(p95 for _, _, p95, _ in results)
        print(f"\nslowest p95 {worst:.1f} ms ({'all under' if worst < BUDGET_MS else 'OVER'} the {BUDGET_MS:.0f} ms "
              f"budget); insert rate after / before {after / before:.2f}; {load()}")
    finally:
        connections.close_all()
        if not args.keep:
            drop(admin, BENCH_DB)


if __name__ == "__main__":
    main()
