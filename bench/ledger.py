"""bench/ledger: the ledger at scale, 10 million rows over 1,000 tenants.

Builds its own database (--database, `aka_bench_ledger` unless told; dropped and made
anew at the start, dropped at the end unless --keep) on the project's PostgreSQL and
migrates it. Then:

1. A copy of the database as it stands (tenants, keys, partitions, an empty ledger):
   `<database>_empty`, dropped at the end.
2. History: --rows ledger rows over --tenants tenants across --months calendar months up
   to now, generated inside PostgreSQL (INSERT ... SELECT, six hours of calls a
   statement) in time order (every tenant's calls interleaved, as the gateway writes
   them), one tenant holding --big-share of them. Each billable row is stamped, as the
   meter outbox would have, with its tenant's meter window and invoice of its month:
   past months' invoices finalized, this month's a draft. The ledger's keys and indexes
   are dropped for the load and made again, from their own definitions, over the rows.
3. The insert rate through the real write path: --probe calls recorded through
   apps.billing.services.call_record (the gateway's front door: the facts of a call in,
   the writer's group-committed batches out), --concurrency at a time, each probe in a
   process of its own; the empty copy and the full ledger take turns, --probe-rounds
   each, and the ratio of their medians says whether the rate holds.
4. The rollups of the last 32 days refreshed (as beat keeps them), then p50/p95 of the
   queries the dashboard's and the invoice pages run, through the selectors their views
   call, for the big tenant. Budget: 200 ms each at p95. PASS or FAIL per query, and a
   RESULT line for the whole.

    python scripts/services.py run -- .venv/bin/python bench/ledger.py [--rows 10000000] [--keep]

Row counts, sizes, times and the load average are printed as they come; on a shared
2-core machine, latencies are noisy, ratios within one run less so.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "akaplatform.settings")

from bench.dashboard import bench_database_url, drop, recreate  # noqa: E402

LEDGER = "billing_callrecord"
BUDGET_MS = 200.0
# The full ledger's insert rate over the empty one's at or above which it "holds": a bar
# with room for noise, as two probes on a shared 2-core machine never time alike.
INSERT_HOLDS = 0.8
# What the history's rows look like: (model, provider, USD per 1M input, output tokens).
MODELS = [("gpt-4o-mini", "openai", 0.15, 0.6), ("claude-haiku-4-5", "anthropic", 1.0, 5.0),
          ("gpt-4o", "openai", 2.5, 10.0)]
BASELINE = (2.5, 10.0)  # gpt-4o
SLICE_SECONDS = 6 * 3600  # rows are generated six hours at a time


def load() -> str:
    return f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} on {os.cpu_count()} cores"


# --- 1 and 3: an empty ledger beside the full one; the insert rate through the real write path


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


def probe(database: str, calls: int, concurrency: int) -> float:
    """The insert rate into `database`'s ledger, measured in a process of its own (its own
    pool, writer and Django connections: two ledgers never share one)."""
    done = subprocess.run([sys.executable, __file__, "--probe-into", database, "--probe", str(calls),
                           "--concurrency", str(concurrency)], capture_output=True, text=True, timeout=1800)
    if done.returncode:
        raise RuntimeError(f"insert-rate probe into {database} failed:\n{done.stderr}")
    return float(done.stdout.split()[-1])


def probe_main(args) -> None:
    """--probe-into: prints the insert rate into that bench database over its tenants."""
    _, url = bench_database_url(args.probe_into)
    os.environ["DATABASE_URL"] = url
    os.environ["AKA_LEDGER_SPOOL_DIR"] = str(ROOT / ".local" / "spool" / f"ledger-{args.probe_into}")
    import django

    django.setup()
    from apps.tenants.models import Tenant

    print(insert_rate(list(Tenant.objects.order_by("id").values_list("id", flat=True)), args.probe, args.concurrency))


def copy_database(admin: str, source: str, name: str) -> None:
    """`name` made anew as a copy of `source` (which no session may be using)."""
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {source}")


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

    from apps.billing import stripe_api
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
                [period.start, int((period.end - period.start).total_seconds()), f"{stripe_api.namespace()}:t",
                 str(int(period.start.timestamp())), tenant_ids])
            window_ids[:, m] = [i for (i,) in cur.fetchall()]
    return invoice_ids, window_ids


# One slice of the history, drawn inside PostgreSQL: rows in time order (every tenant's
# calls interleaved, as the gateway writes them), cache hits, cheap and strong routes,
# failures and costs in the proportions of apps.dashboard.history. OFFSET 0 keeps each
# level's random draws to one per row (a subquery with it is never merged into its parent);
# (SELECT %%(array)s::type[]) casts the array parameter once per statement, not once per row.
_SLICE = """
INSERT INTO billing_callrecord (created_at, tenant_id, invoice_id, meter_window_id, latency_ms, cache_similarity,
    prompt_tokens, completion_tokens, price_cents, status_code, attempts, stream, billable, api_key_id, request_id,
    endpoint, model_requested, model_served, provider, baseline_model, cache, error_type, route, route_reason,
    speculation, speculation_outcome, judge, provider_cost_micros, counterfactual_cost_micros, draft_cost_micros)
SELECT to_timestamp(at), (SELECT %(tenants)s::bigint[])[k], CASE WHEN ok THEN (SELECT %(invoices)s::bigint[])[k] END,
       CASE WHEN ok THEN (SELECT %(windows)s::bigint[])[k] END,
       round((CASE WHEN hit THEN exp(random_normal(3.2, 0.4)) ELSE exp(random_normal(6.4, 0.6)) END)::numeric, 2),
       CASE kind WHEN 'semantic' THEN round((0.90 + 0.095 * random())::numeric, 4) WHEN 'exact' THEN 1.0 END,
       CASE WHEN hit THEN 0 ELSE tokens_in END, CASE WHEN hit THEN 0 ELSE tokens_out END,
       CASE WHEN ok THEN 10 ELSE 0 END, CASE WHEN ok THEN 200 ELSE 502 END, CASE WHEN ok THEN 1 ELSE 3 END,
       i %% 5 < 2, ok, CASE WHEN k = 1 THEN (SELECT %(keys)s::uuid[])[key_index] END,
       'req_' || md5(random()::text || i), 'chat.completions',
       CASE WHEN hit THEN (SELECT %(names)s::text[])[model] ELSE 'auto' END, (SELECT %(names)s::text[])[model],
       (SELECT %(providers)s::text[])[model], 'gpt-4o', kind, CASE WHEN ok THEN '' ELSE 'upstream_error' END,
       CASE WHEN hit THEN '' WHEN cheap THEN 'cheap' ELSE 'strong' END,
       CASE WHEN hit THEN '' WHEN cheap THEN 'predicted quality meets the floor'
            ELSE 'predicted quality below the floor' END,
       CASE WHEN NOT hit AND cheap THEN 'cascade' ELSE '' END, CASE WHEN NOT hit AND cheap THEN 'accepted' ELSE '' END,
       CASE WHEN NOT hit AND cheap THEN 'heuristic' ELSE '' END,
       cost, CASE WHEN ok THEN round(tokens_in * %(baseline_in)s + tokens_out * %(baseline_out)s, 4) ELSE 0 END,
       CASE WHEN NOT hit AND cheap THEN cost ELSE 0 END
FROM (
  SELECT *, CASE WHEN hit THEN 0 ELSE round(tokens_in * (SELECT %(price_in)s::numeric[])[model]
                                            + tokens_out * (SELECT %(price_out)s::numeric[])[model], 4) END AS cost,
         model < 3 AS cheap
  FROM (
    SELECT *, kind IN ('exact', 'semantic') AS hit,
           CASE WHEN kind IN ('exact', 'semantic') OR route_draw < 0.7 THEN
                CASE WHEN model_draw < 0.75 THEN 1 ELSE 2 END ELSE 3 END AS model
    FROM (
      SELECT i, %(lo)s + (i + random()) * %(step)s AS at,
             CASE WHEN random() < %(big_share)s THEN 1 ELSE 2 + floor(random() * %(others)s)::int END AS k,
             NOT failed AS ok,
             CASE WHEN failed THEN 'miss' WHEN kind_draw < 0.12 THEN 'exact' WHEN kind_draw < 0.37 THEN 'semantic'
                  WHEN kind_draw < 0.97 THEN 'miss' ELSE 'off' END AS kind,
             route_draw, model_draw, tokens_in, tokens_out, key_index
      FROM (
        SELECT i, random() < 0.03 AS failed, random() AS kind_draw, random() AS route_draw, random() AS model_draw,
               greatest(floor(exp(random_normal(5.5, 0.7))), 8)::bigint AS tokens_in,
               greatest(floor(exp(random_normal(4.8, 0.8))), 1)::bigint AS tokens_out,
               1 + floor(random() * %(key_count)s)::int AS key_index
        FROM generate_series(0, %(n)s - 1) AS i OFFSET 0
      ) AS draws OFFSET 0
    ) AS calls OFFSET 0
  ) AS routed OFFSET 0
) AS priced
"""


def history(*, tenant_ids: list[int], rows: int, months: list[datetime], now: datetime, big_share: float,
            big_keys: list[str], invoice_ids: np.ndarray, window_ids: np.ndarray,
            deadline: float) -> tuple[int, float]:
    """Writes `rows` calls, an equal share in each month, newest month first and in time
    order within a month, six hours per INSERT ... SELECT generated in the server (tenant
    1 of `tenant_ids` gets `big_share` of them, the others equal shares); the current
    month gets a whole month's share in the days it has had, so its partition (where the
    gateway inserts) and its draft invoices are as full as at a month's end. Stops early
    at `deadline` (time.monotonic()), with the oldest months short. Returns (rows
    written, seconds)."""
    from django.db import connection

    from apps.billing.partitions import months_after

    params = {"tenants": tenant_ids, "keys": big_keys, "key_count": len(big_keys), "big_share": big_share,
              "others": len(tenant_ids) - 1, "names": [m[0] for m in MODELS], "providers": [m[1] for m in MODELS],
              "price_in": [m[2] for m in MODELS], "price_out": [m[3] for m in MODELS],
              "baseline_in": Decimal(str(BASELINE[0])), "baseline_out": Decimal(str(BASELINE[1]))}
    written, started, report = 0, time.perf_counter(), time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SELECT setseed(0.7)")
        for m, start in reversed(list(enumerate(months))):
            following = months_after(start.date(), 1)
            first = start.timestamp()
            last = min(datetime(following.year, following.month, 1, tzinfo=UTC), now).timestamp()
            share = rows * (m + 1) // len(months) - rows * m // len(months)
            month = {**params, "invoices": invoice_ids[:, m].tolist(), "windows": window_ids[:, m].tolist()}
            done = 0
            for lo in np.arange(first, last, SLICE_SECONDS):
                if time.monotonic() > deadline:
                    return written + done, time.perf_counter() - started
                hi = min(lo + SLICE_SECONDS, last)
                n = int(round(share * (hi - first) / (last - first))) - done
                if n <= 0:
                    continue
                cursor.execute(_SLICE, {**month, "n": n, "lo": float(lo), "step": (hi - lo) / n})
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

    old = CallRecord.objects.for_tenant(big).filter(created_at__lt=now - timedelta(days=70)).order_by(
        "-created_at", "-id").first()
    draft = Invoice.objects.for_tenant(big).get(status=Invoice.Status.DRAFT)
    final = Invoice.objects.for_tenant(big).exclude(status=Invoice.Status.DRAFT).order_by("-period_start")[0]
    middle = billing.invoice_lines(invoice=final).order_by("created_at", "id")[final_lines(final) // 2]

    # Each is what its view in apps.dashboard.views runs, selector for selector (the
    # templates aside): bench/dashboard times the whole pages.
    def overview(key: str):
        return dashboard.overview(tenant=big, period=dashboard.period_of(key=key),
                                  baseline_model=dashboard.baseline_model_of(tenant=big))

    def calls(query: str, before=None):
        filters = CallFilter(QueryDict(query), queryset=dashboard.calls_of(tenant=big),
                             keys=tenants.api_key_list(tenant=big), models=dashboard.models_seen(tenant=big))
        assert filters.is_valid(), filters.errors
        return dashboard.calls_page(calls=filters.qs, before=before)

    def call_detail(request_id: str):
        call = dashboard.access_call(tenant=big, request_id=request_id)
        return call, dashboard.cache_entry_of(tenant=big, entry_id=call.cache_entry_id)

    def invoice_list():
        return [(i, billing.invoice_amounts(invoice=i)) for i in billing.invoice_list(tenant=big)]

    def invoice_detail(invoice, after=None):
        found = billing.access_invoice(tenant=big, invoice_id=invoice.pk)
        lines = billing.invoice_lines_page(invoice=found, after=after)
        return lines, billing.invoice_amounts(invoice=found)

    queries = [
        ("overview, today", "dashboard", lambda: overview("today")),
        ("overview, 7 days", "dashboard", lambda: overview("7d")),
        ("overview, 30 days", "dashboard", lambda: overview("30d")),
        ("calls, first page", "dashboard", lambda: calls("")),
        ("calls, page 70 days back", "dashboard", lambda: calls("", before=(old.created_at, old.pk))),
        ("calls, cache=semantic & model", "dashboard", lambda: calls("cache=semantic&model=gpt-4o-mini")),
        ("calls, failed", "dashboard", lambda: calls("status=error")),
        ("calls, one key, last day", "dashboard",
         lambda: calls(f"key={keys[0]}&since={(now - timedelta(days=1)):%Y-%m-%dT%H:%M}")),
        ("call detail, 70 days old", "dashboard", lambda: call_detail(old.request_id)),
        ("invoice list (draft's running total)", "invoice", invoice_list),
        ("draft invoice, first lines + totals", "invoice", lambda: invoice_detail(draft)),
        ("finalized invoice, first lines", "invoice", lambda: invoice_detail(final)),
        ("finalized invoice, lines from the middle", "invoice",
         lambda: invoice_detail(final, after=(middle.created_at, middle.pk))),
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


def keys_set_aside() -> list[str]:
    """Drops the ledger's keys, foreign keys and indexes before the bulk load and returns
    the statements that make them again, read from the catalog (so they are the
    migrations' own): each is built once over the loaded rows instead of kept up row by
    row, and no foreign key is checked row by row."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass"
                    " AND contype IN ('p', 'u', 'f') ORDER BY contype = 'f', conname", [LEDGER])
        constraints = cur.fetchall()
        cur.execute("SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index i"
                    " WHERE indrelid = %s::regclass AND NOT EXISTS ("
                    "   SELECT 1 FROM pg_constraint c WHERE c.conrelid = i.indrelid AND c.conindid = i.indexrelid)"
                    " ORDER BY 1", [LEDGER])
        indexes = cur.fetchall()
        for name, _ in reversed(constraints):
            cur.execute(f"ALTER TABLE {LEDGER} DROP CONSTRAINT {name}")
        for name, _ in indexes:
            cur.execute(f"DROP INDEX {name}")
    # The catalog writes a partitioned index as made ON ONLY the parent (its partitions'
    # indexes attached one by one); made on the parent, it is built on every partition.
    return ([f"ALTER TABLE {LEDGER} ADD CONSTRAINT {name} {definition}" for name, definition in constraints]
            + [definition.replace(" ON ONLY ", " ON ", 1) for _, definition in indexes])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--tenants", type=int, default=1_000)
    parser.add_argument("--months", type=int, default=6, help="calendar months of history, the current one included")
    parser.add_argument("--big-share", type=float, default=0.10, help="the big tenant's share of the rows")
    parser.add_argument("--probe", type=int, default=20_000, help="calls recorded to measure the insert rate")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--probe-rounds", type=int, default=3,
                        help="insert-rate probes into each ledger, the empty and the full one taking turns")
    parser.add_argument("--probe-into", help=argparse.SUPPRESS)  # one probe, in its own process (probe())
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--max-load-minutes", type=float, default=0,
                        help="stop writing the history after this long (0: never), and measure what was built")
    parser.add_argument("--database", default="aka_bench_ledger",
                        help="the bench's own database on the project's PostgreSQL (dropped and made anew)")
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args()
    if args.probe_into:
        return probe_main(args)
    empty = f"{args.database}_empty"
    admin, url = bench_database_url(args.database)  # the project's PostgreSQL; this bench's own database on it
    recreate(admin, args.database)
    os.environ["DATABASE_URL"] = url
    os.environ["AKA_LEDGER_SPOOL_DIR"] = str(ROOT / ".local" / "spool" / f"ledger-{args.database}")
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
        print(f"migrated {args.database} in {time.perf_counter() - started:.1f}s; {load()}", flush=True)
        now = datetime.now(UTC)
        months = months_of(now - timedelta(days=31 * (args.months - 1)), now)[-args.months:]
        for month in months:
            if partitions.month_of(month) not in partitions.existing():
                partitions.create(partitions.month_of(month))
        big, tenant_ids = make_tenants(args.tenants)
        keys = [str(services.api_key_issue(tenant=big, name=f"key {i}")[0].pk) for i in range(5)]
        print(f"{len(tenant_ids):,} tenants; months {months[0]:%Y-%m} to {months[-1]:%Y-%m}; "
              f"{len(partitions.existing())} monthly partitions and DEFAULT", flush=True)

        connections.close_all()
        connections["default"].close_pool()  # the copy wants no session on its source
        copy_database(admin, args.database, empty)
        print(f"{empty}: a copy of it with an empty ledger, to compare insert rates with", flush=True)

        invoice_ids, window_ids = bills(tenant_ids, months, now)
        print(f"\nwriting {args.rows:,} rows, generated in PostgreSQL ({args.big_share:.0%} for bench-big) ...",
              flush=True)
        deadline = time.monotonic() + (args.max_load_minutes * 60 or float("inf"))
        with connection.cursor() as cursor:  # vacuumed once, after the load, instead of during it
            for name in partitions.existing().values():
                cursor.execute(f"ALTER TABLE {name} SET (autovacuum_enabled = off)")
        rebuild = keys_set_aside()
        written, seconds = history(tenant_ids=tenant_ids, rows=args.rows, months=months, now=now,
                                   big_share=args.big_share, big_keys=keys, invoice_ids=invoice_ids,
                                   window_ids=window_ids, deadline=deadline)
        print(f"INSERT ... SELECT of {written:,} rows in {seconds:.0f}s ({written / seconds:,.0f} rows/s); {load()}",
              flush=True)
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
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute("SET maintenance_work_mem = '1GB'")  # this session's index builds sort in memory
            for statement in rebuild:
                cursor.execute(statement)
            cursor.execute("RESET maintenance_work_mem")
        print(f"{len(rebuild)} keys, foreign keys and indexes made over the loaded rows in "
              f"{time.perf_counter() - started:.0f}s; {load()}", flush=True)
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
            cursor.execute("SELECT pg_database_size(current_database())")
            database_bytes = cursor.fetchone()[0]
        print(f"{'all':<30} {total_rows:>12,} {total_table / 2**20:>10,.0f} {total_index / 2**20:>10,.0f}")
        print(f"database {args.database}: {database_bytes / 2**30:.2f} GB on disk")
        print(f"average row {row_bytes:.0f} bytes (column data and row header; the heap adds 4 bytes of line "
              f"pointer and page overhead); bench-big holds {big_rows:,} rows", flush=True)

        print(f"\ninsert rate: {args.probe:,} calls through services.call_record, {args.concurrency} at a time, "
              f"in a process of its own; the empty and the full ledger taking turns:", flush=True)
        rates: dict[str, list[float]] = {"empty": [], "full": []}
        for turn in range(args.probe_rounds):
            for ledger in ("empty", "full") if turn % 2 == 0 else ("full", "empty"):
                rates[ledger].append(probe(empty if ledger == "empty" else args.database, args.probe,
                                           args.concurrency))
                print(f"  {ledger + ' ledger:':<14} {rates[ledger][-1]:>7,.0f} calls/s; {load()}", flush=True)
        before, after = statistics.median(rates["empty"]), statistics.median(rates["full"])
        holds = after / before >= INSERT_HOLDS
        print(f"medians: empty {before:,.0f} calls/s, full {after:,.0f} calls/s; full / empty = {after / before:.2f} "
              f"({'PASS' if holds else 'FAIL'}: holds at {INSERT_HOLDS:.2f} or more)", flush=True)

        started = time.perf_counter()
        rollups_refresh(since=now - timedelta(days=32))  # what the overview's longest period (30 days) reads
        print(f"\nrollups: the last 32 days refreshed in {time.perf_counter() - started:.0f}s", flush=True)
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE dashboard_callrollup")
            cursor.execute("VACUUM ANALYZE dashboard_latencyrollup")

        results = timed_queries(big, keys, now, args.repeat)
        print(f"\nqueries of the dashboard and the invoice pages for bench-big ({big_rows:,} calls), through "
              f"their selectors, {args.repeat} runs each (ms); {load()}:\n")
        print(f"{'query':<42} {'page':<10} {'p50':>8} {'p95':>8}  p95 under {BUDGET_MS:.0f} ms")
        for name, p50, p95, page in results:
            print(f"{name:<42} {page:<10} {p50:>8.1f} {p95:>8.1f}  {'PASS' if p95 < BUDGET_MS else 'FAIL'}")
        worst = max(p95 for _, _, p95, _ in results)
        failed = [name for name, _, p95, _ in results if p95 >= BUDGET_MS]
        print(f"\nslowest p95 {worst:.1f} ms; {len(results) - len(failed)} of {len(results)} queries under "
              f"{BUDGET_MS:.0f} ms; insert rate full / empty {after / before:.2f}; {written:,} of {args.rows:,} rows; "
              f"{load()}")
        short = ([f"over {BUDGET_MS:.0f} ms: {', '.join(failed)}"] if failed else []) \
            + ([f"insert rate fell to {after / before:.2f} of the empty ledger's"] if not holds else []) \
            + ([f"only {written:,} of {args.rows:,} rows written"] if written < args.rows else [])
        print(f"RESULT: {'FAIL (' + '; '.join(short) + ')' if short else 'PASS'}")
    finally:
        connections.close_all()
        drop(admin, empty)
        if not args.keep:
            drop(admin, args.database)


if __name__ == "__main__":
    main()
