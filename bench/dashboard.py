"""bench/dashboard: server time of every dashboard page for a tenant with 1 million calls
in the last 30 days.

Builds its own database (`aka_bench_dashboard`, dropped and recreated at the start,
dropped at the end unless --keep) on the project's PostgreSQL, migrates it, and writes
the big tenant's month of calls (plus two smaller tenants beside it) with COPY through
apps.dashboard.history. The calls of the last calendar month are collected by the meter
outbox as it runs in production and that month's invoice is finalized; this month's are
collected onto a draft. Then it times a full rollup refresh and an incremental one (what
Celery beat runs every minute), and requests every page --repeat times (after two warm-up
requests) through Django's test client in this process: the time from request to
response, middleware, queries and template rendering included, network excluded. Prints
p50 and p95 per page and whether each is under the 200 ms budget.

    python scripts/services.py run -- .venv/bin/python bench/dashboard.py [--calls 1000000] [--repeat 30]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import dj_database_url
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "akaplatform.settings")
BENCH_DB = "aka_bench_dashboard"
BUDGET_MS = 200.0


def bench_database_url(name: str = BENCH_DB) -> tuple[str, str]:
    """(admin conninfo, the DATABASE_URL of the bench's database `name`) on the project's PostgreSQL."""
    default = "postgresql://postgres@" + quote(str(ROOT / ".local" / "pgdata"), safe="") + "/akaplatform"
    config = dj_database_url.parse(os.environ.get("DATABASE_URL", default))
    host = quote(config["HOST"], safe="")
    user = config["USER"] or "postgres"
    return f"postgresql://{user}@{host}/postgres", f"postgresql://{user}@{host}/{name}"


def recreate(admin: str, name: str = BENCH_DB) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")


def drop(admin: str, name: str = BENCH_DB) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def timed(fn, *args, **kwargs) -> float:
    started = time.perf_counter()
    fn(*args, **kwargs)
    return (time.perf_counter() - started) * 1000


def page_cursor(row) -> str:
    """The pages' "after/before" cursor for a ledger row, URL-safe."""
    return f"{row.created_at.isoformat().replace('+', '%2B')}_{row.pk}"


CSV_BYTES = 64 * 1024


def served(client, path: str, headers: dict) -> int:
    """Requests a page. A download (the CSV) goes through the async client, as the ASGI
    server serves it, and counts until its first CSV_BYTES arrive: the whole of a month's
    CSV is a download, not a page."""
    from django.test import AsyncClient

    if not isinstance(client, AsyncClient):
        return client.get(path, **headers).status_code

    async def first_bytes() -> int:
        response = await client.get(path, **headers)
        received = 0
        async for chunk in response.streaming_content:
            received += len(chunk)
            if received >= CSV_BYTES:
                break
        return response.status_code

    return asyncio.run(first_bytes())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args()
    admin, url = bench_database_url()
    recreate(admin)
    os.environ["DATABASE_URL"] = url
    os.environ["AKA_METER_BATCH"] = "200000"  # the outbox's catch-up after a bulk load
    # Production settings: DEBUG's query log would be timed as part of every page.
    os.environ.update(DJANGO_DEBUG="0", DJANGO_ALLOWED_HOSTS="localhost,testserver", AKA_SSL_REDIRECT="0")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import AsyncClient, Client
    from django.utils import timezone

    from apps.billing.invoices import Period, period_close
    from apps.billing.models import CallRecord, Invoice
    from apps.billing.outbox import collect
    from apps.dashboard.history import ledger_history
    from apps.dashboard.rollups import rollups_refresh
    from apps.providers.catalog import sync_from_seed
    from apps.tenants import services
    from apps.tenants.models import Membership

    try:
        started = time.perf_counter()
        call_command("migrate", verbosity=0)
        sync_from_seed()
        print(f"migrated {BENCH_DB} in {time.perf_counter() - started:.1f}s")
        big, owner = services.tenant_create(name="Bench Big", slug="bench-big", owner_email="owner@bench.test",
                                            owner_password="bench-password-1")
        keys = [str(services.api_key_issue(tenant=big, name=f"key {i}")[0].pk) for i in range(5)]
        for i in range(10):
            user = get_user_model().objects.create_user(f"m{i}@bench.test", f"m{i}@bench.test", "x")
            Membership.objects.for_tenant(big).create(tenant=big, user=user, role="member")
        now = timezone.now()
        loads = [(big, args.calls, keys)]
        for slug in ("bench-small-1", "bench-small-2"):
            small, _ = services.tenant_create(name=slug, slug=slug, owner_email=f"{slug}@bench.test",
                                              owner_password="bench-password-1")
            loads.append((small, args.calls // 20, []))
        this_month = Period.containing(now)
        spans = [(now - timedelta(days=30), this_month.start), (this_month.start, now)]
        seconds = (now - spans[0][0]).total_seconds()
        started, stamped = time.perf_counter(), 0.0
        for part, (start, end) in enumerate(spans):  # last month's calls, then this month's
            if end <= start:
                continue
            for i, (tenant, calls, tenant_keys) in enumerate(loads):
                ledger_history(tenant_id=tenant.pk, calls=round(calls * (end - start).total_seconds() / seconds),
                               start=start, end=end, api_key_ids=tenant_keys, seed=2 * i + part)
            collecting = time.perf_counter()
            while collect(at=end - timedelta(seconds=1)):
                pass
            stamped += time.perf_counter() - collecting
            if end == this_month.start:
                closing = time.perf_counter()
                for tenant, _, _ in loads:
                    period_close(tenant_id=tenant.pk, period=this_month.previous())
                print(f"{this_month.previous().start:%B}'s invoices finalized in {time.perf_counter() - closing:.1f}s")
        total = CallRecord.objects.unscoped_across_all_tenants().count()
        print(f"COPY of {total:,} ledger rows ({args.calls:,} for bench-big) and their meter collection in "
              f"{time.perf_counter() - started:.1f}s (collection {stamped:.1f}s)")
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE billing_callrecord")
        full = timed(rollups_refresh)
        incremental = timed(rollups_refresh)
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE dashboard_callrollup")
            cursor.execute("SELECT count(*) FROM dashboard_callrollup WHERE tenant_id = %s", [big.pk])
            rollup_rows = cursor.fetchone()[0]
        print(f"rollups: full refresh {full:,.0f} ms, incremental (last hours) {incremental:,.0f} ms; "
              f"{rollup_rows:,} rollup rows for bench-big")
        tail = CallRecord.objects.for_tenant(big).filter(
            created_at__gte=now.replace(minute=0, second=0, microsecond=0)).count()
        print(f"ledger tail read live by the pages (calls this hour): {tail:,}")

        call = CallRecord.objects.for_tenant(big).order_by("-created_at").first()
        tenant_client = Client(HTTP_HOST="localhost")
        tenant_client.force_login(owner)
        download_client = AsyncClient()
        download_client.cookies = tenant_client.cookies
        staff_client = Client(HTTP_HOST="localhost")
        staff_client.force_login(get_user_model().objects.create_user("ops@bench.test", "ops@bench.test", "x",
                                                                      is_staff=True))
        last = CallRecord.objects.for_tenant(big).order_by("-created_at", "-id")[49]
        day = (now - timedelta(days=3)).date()
        bills = list(Invoice.objects.for_tenant(big).order_by("period_start"))
        deep = {bill: CallRecord.objects.for_tenant(big).filter(invoice=bill).order_by("created_at", "id")[
            bill.calls // 2] for bill in bills if bill.calls}
        for bill in bills:
            print(f"invoice {bill.number}: {bill.status}, {bill.calls:,} lines")
        pages = [
            ("overview, today", tenant_client, "/?period=today", {}),
            ("overview, 7 days", tenant_client, "/?period=7d", {}),
            ("overview, 30 days", tenant_client, "/?period=30d", {}),
            ("overview, custom 10 days", tenant_client,
             f"/?period=custom&start={day - timedelta(days=10)}&end={day}", {}),
            ("overview numbers (htmx, 30 days)", tenant_client, "/?period=30d",
             {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "numbers"}),
            ("calls", tenant_client, "/calls/", {}),
            ("calls, cache=semantic & model", tenant_client, "/calls/?cache=semantic&model=gpt-4o-mini", {}),
            ("calls, status=failed", tenant_client, "/calls/?status=error", {}),
            ("calls, one key, last day", tenant_client,
             f"/calls/?key={keys[0]}&since={(now - timedelta(days=1)):%Y-%m-%dT%H:%M}", {}),
            ("calls, next page (htmx)", tenant_client,
             f"/calls/?before={page_cursor(last)}",
             {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "calls-more"}),
            ("call detail", tenant_client, f"/calls/{call.request_id}/", {}),
            ("invoices", tenant_client, "/invoices/", {}),
            *[(f"invoice, {bill.status} ({bill.calls:,} lines)", tenant_client, f"/invoices/{bill.pk}/", {})
              for bill in bills],
            *[(f"invoice, {bill.status}: lines mid-way (htmx)", tenant_client,
               f"/invoices/{bill.pk}/?after={page_cursor(line)}", {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "lines-more"})
              for bill, line in deep.items()],
            *[(f"invoice, {bill.status}: CSV, first {CSV_BYTES // 1024} KB", download_client,
               f"/invoices/{bill.pk}/csv", {}) for bill in deep],
            ("API keys", tenant_client, "/keys/", {}),
            ("settings", tenant_client, "/settings/", {}),
            ("staff console", staff_client, "/staff/?sort=-margin_usd", {}),
            ("staff tune page", staff_client, f"/staff/tenants/{big.pk}/", {}),
            ("staff rule preview (htmx)", staff_client, f"/staff/tenants/{big.pk}/preview/?threshold=0.88",
             {"HTTP_HX_REQUEST": "true"}),
            ("staff audit trail", staff_client, "/staff/audit/", {}),
        ]
        # Shared machines: the load says how much of a page's time was waiting for a core.
        print(f"\nserver time per page, {args.repeat} requests each (ms), tenant bench-big with "
              f"{args.calls:,} calls in 30 days; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores:\n")
        print(f"{'page':<36} {'p50':>8} {'p95':>8}  under {BUDGET_MS:.0f} ms")
        worst = 0.0
        for name, client, path, headers in pages:
            for _ in range(2):
                assert served(client, path, headers) == 200, path
            samples = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                status = served(client, path, headers)
                samples.append((time.perf_counter() - started) * 1000)
                assert status == 200, path
            samples.sort()
            p50 = statistics.median(samples)
            p95 = samples[min(len(samples) - 1, int(round(0.95 * (len(samples) - 1))))]
            worst = max(worst, p95)
            print(f"{name:<36} {p50:>8.1f} {p95:>8.1f}  {'yes' if p95 < BUDGET_MS else 'NO'}")
        verdict = "all pages under" if worst < BUDGET_MS else "OVER"
        print(f"\nload average now {os.getloadavg()[0]:.1f}; slowest p95: {worst:.1f} ms ({verdict} "
              f"the {BUDGET_MS:.0f} ms budget)")
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            drop(admin)


if __name__ == "__main__":
    main()
