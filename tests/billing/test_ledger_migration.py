"""Migration 0007 carries an existing ledger into the partitioned table: every row, id and
value kept, each in its month's partition, the ids going on after the largest. Run on a
scratch database of its own, migrated to 0006 and given rows first."""

import os
import subprocess
from urllib.parse import quote

import psycopg
import pytest
from django.conf import settings

from tests.live import ROOT, _python

ROWS = """
INSERT INTO tenants_plan (name, price_per_call_cents, requests_per_minute, key_requests_per_minute)
VALUES ('Migrated', 10, 60, 60);
INSERT INTO tenants_tenant (name, slug, status, created_at, plan_id, log_prompts)
SELECT 'Old', 'old', 'active', now(), id, false FROM tenants_plan WHERE name = 'Migrated';
INSERT INTO billing_callrecord (request_id, endpoint, model_requested, model_served, provider, stream, prompt_tokens,
    completion_tokens, provider_cost_micros, price_cents, billable, status_code, error_type, cache, attempts,
    latency_ms, created_at, tenant_id, baseline_model, counterfactual_cost_micros, route_reason, prompt)
SELECT 'req_old_' || g, 'chat.completions', 'auto', 'gpt-4o-mini', 'openai', g % 2 = 0, 10 * g, 20 * g, 1.2345 * g,
    10, true, 200, '', 'miss', 1, 12.5 * g, timestamptz '2026-03-31 23:59:59.999999+00' + (g - 1) * interval '1 month',
    (SELECT id FROM tenants_tenant WHERE slug = 'old'), 'gpt-4o', 3.5 * g, 'reason ' || g, NULL
FROM generate_series(1, 3) AS g;
"""
SNAPSHOT = ("SELECT id, request_id, created_at, provider_cost_micros, counterfactual_cost_micros, prompt_tokens, "
            "latency_ms, stream, route_reason FROM billing_callrecord ORDER BY id")


@pytest.fixture
def scratch():
    db = settings.DATABASES["default"]
    host, name = quote(db["HOST"], safe=""), f"{db['NAME']}_migration"
    admin = f"postgresql://{db['USER']}@{host}/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    yield f"postgresql://{db['USER']}@{host}/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def migrate(url: str, target: str) -> None:
    done = subprocess.run([_python(), "manage.py", "migrate", "billing", target, "--noinput", "-v", "0"], cwd=ROOT,
                          env={**os.environ, "DATABASE_URL": url}, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_migration_carries_every_row_into_its_months_partition(scratch):
    migrate(scratch, "0006")
    with psycopg.connect(scratch, autocommit=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")  # the months are UTC months
        conn.execute(ROWS)
        before = conn.execute(SNAPSHOT).fetchall()
    assert len(before) == 3

    migrate(scratch, "0007")
    with psycopg.connect(scratch, autocommit=True) as conn:
        assert conn.execute(SNAPSHOT).fetchall() == before
        placed = conn.execute("SELECT request_id, tableoid::regclass::text FROM billing_callrecord "
                              "ORDER BY id").fetchall()
        assert placed == [("req_old_1", "billing_callrecord_y2026m03"), ("req_old_2", "billing_callrecord_y2026m04"),
                          ("req_old_3", "billing_callrecord_y2026m05")]
        assert conn.execute("SELECT relkind FROM pg_class WHERE relname = 'billing_callrecord'").fetchone() == ("p",)
        # New rows are numbered after the carried ones, and the same call cannot come in twice.
        insert = ("INSERT INTO billing_callrecord (request_id, endpoint, model_requested, model_served, provider, "
                  "stream, prompt_tokens, completion_tokens, provider_cost_micros, price_cents, billable, status_code, "
                  "error_type, cache, attempts, latency_ms, created_at, tenant_id, baseline_model, "
                  "counterfactual_cost_micros) SELECT 'req_new', 'e', 'm', 'm', 'p', false, 0, 0, 0, 0, false, 200, '', "
                  "'miss', 1, 1, timestamptz '2026-04-02 00:00:00+00', id, '', 0 FROM tenants_tenant "
                  "ON CONFLICT (tenant_id, request_id, created_at) DO NOTHING RETURNING id")
        [(new_id,)] = conn.execute(insert).fetchall()
        assert new_id > before[-1][0]
        assert conn.execute(insert).fetchall() == []
