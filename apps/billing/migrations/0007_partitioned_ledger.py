"""The ledger partitioned by month of created_at, its rows carried over.

Django cannot create partitioned tables, so the database side is SQL (as for the cache's
table); the state side records what changed for the model: request_id is unique only
with (tenant, created_at), and tenant_id has no index of its own. Columns are laid out
widest-aligned first (8-byte, 4, 2, 1, then variable width), so rows carry no alignment
padding. The primary key is (id, created_at), ids from one sequence for every partition.
Each month present in the old table gets its partition (apps.billing.partitions makes
them, as the beat task does from then on), the rows move in, and the indexes are built
once after the copy.
"""

from django.db import migrations, models
from django.db.models.deletion import CASCADE

TABLE = "billing_callrecord"
OLD = "billing_callrecord_unpartitioned"
# Every column but id and created_at, in the new table's order.
COLUMNS = ("tenant_id, invoice_id, meter_window_id, cache_entry_id, latency_ms, ttft_ms, cache_similarity, "
           "predicted_quality, judge_score, prompt_tokens, completion_tokens, price_cents, status_code, attempts, "
           "stream, billable, api_key_id, request_id, endpoint, model_requested, model_served, provider, "
           "baseline_model, cache, error_type, route, route_reason, speculation, speculation_outcome, judge, "
           "provider_cost_micros, counterfactual_cost_micros, draft_cost_micros, strong_cost_micros, "
           "judge_cost_micros, prompt")

# Columns of both shapes, but for id (an identity column before, a sequence now: a
# partitioned table takes identity columns only from PostgreSQL 17 on).
_BODY = """
    created_at timestamptz NOT NULL DEFAULT statement_timestamp(),
    tenant_id bigint NOT NULL,
    invoice_id bigint NULL,
    meter_window_id bigint NULL,
    cache_entry_id bigint NULL,
    latency_ms double precision NOT NULL,
    ttft_ms double precision NULL,
    cache_similarity double precision NULL,
    predicted_quality double precision NULL,
    judge_score double precision NULL,
    prompt_tokens integer NOT NULL CHECK (prompt_tokens >= 0),
    completion_tokens integer NOT NULL CHECK (completion_tokens >= 0),
    price_cents integer NOT NULL CHECK (price_cents >= 0),
    status_code smallint NOT NULL CHECK (status_code >= 0),
    attempts smallint NOT NULL CHECK (attempts >= 0),
    stream boolean NOT NULL,
    billable boolean NOT NULL,
    api_key_id uuid NULL,
    request_id varchar(40) NOT NULL,
    endpoint varchar(30) NOT NULL,
    model_requested varchar(100) NOT NULL,
    model_served varchar(100) NOT NULL,
    provider varchar(20) NOT NULL,
    baseline_model varchar(100) NOT NULL,
    cache varchar(10) NOT NULL,
    error_type varchar(40) NOT NULL,
    route varchar(20) NOT NULL DEFAULT '',
    route_reason varchar(100) NOT NULL DEFAULT '',
    speculation varchar(20) NOT NULL DEFAULT '',
    speculation_outcome varchar(20) NOT NULL DEFAULT '',
    judge varchar(20) NOT NULL DEFAULT '',
    provider_cost_micros numeric(18, 4) NOT NULL,
    counterfactual_cost_micros numeric(18, 4) NOT NULL,
    draft_cost_micros numeric(18, 4) NOT NULL DEFAULT 0,
    strong_cost_micros numeric(18, 4) NOT NULL DEFAULT 0,
    judge_cost_micros numeric(18, 4) NOT NULL DEFAULT 0,
    prompt text NULL,"""

_FOREIGN_KEYS = """
ALTER TABLE billing_callrecord
    ADD CONSTRAINT billing_callrecord_tenant_fk FOREIGN KEY (tenant_id) REFERENCES tenants_tenant (id)
        DEFERRABLE INITIALLY DEFERRED,
    ADD CONSTRAINT billing_callrecord_api_key_fk FOREIGN KEY (api_key_id) REFERENCES tenants_apikey (id)
        DEFERRABLE INITIALLY DEFERRED,
    ADD CONSTRAINT billing_callrecord_invoice_fk FOREIGN KEY (invoice_id) REFERENCES billing_invoice (id)
        DEFERRABLE INITIALLY DEFERRED,
    ADD CONSTRAINT billing_callrecord_meter_window_fk FOREIGN KEY (meter_window_id) REFERENCES billing_meterwindow (id)
        DEFERRABLE INITIALLY DEFERRED;
CREATE INDEX callrecord_tenant_time ON billing_callrecord (tenant_id, created_at DESC);
CREATE INDEX callrecord_unmetered ON billing_callrecord (tenant_id) WHERE billable AND meter_window_id IS NULL;
CREATE INDEX callrecord_invoice_lines ON billing_callrecord (invoice_id, created_at, id) WHERE invoice_id IS NOT NULL;
CREATE INDEX billing_callrecord_api_key_id_a78af761 ON billing_callrecord (api_key_id);
"""

# The old table steps aside; the names its indexes hold are the new table's.
_SET_ASIDE = f"""
ALTER TABLE {TABLE} RENAME TO {OLD};
ALTER TABLE {OLD} DROP CONSTRAINT IF EXISTS billing_callrecord_pkey;
ALTER TABLE {OLD} DROP CONSTRAINT IF EXISTS billing_callrecord_request_id_key,
    DROP CONSTRAINT IF EXISTS billing_callrecord_prompt_tokens_check,
    DROP CONSTRAINT IF EXISTS billing_callrecord_completion_tokens_check,
    DROP CONSTRAINT IF EXISTS billing_callrecord_price_cents_check,
    DROP CONSTRAINT IF EXISTS billing_callrecord_status_code_check,
    DROP CONSTRAINT IF EXISTS billing_callrecord_attempts_check;
DROP INDEX IF EXISTS callrecord_tenant_time, callrecord_unmetered, callrecord_invoice_lines,
    billing_callrecord_api_key_id_a78af761;
"""

CREATE = _SET_ASIDE + f"""
CREATE SEQUENCE billing_callrecord_ids;
CREATE TABLE {TABLE} (
    id bigint NOT NULL DEFAULT nextval('billing_callrecord_ids'),{_BODY}
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
ALTER SEQUENCE billing_callrecord_ids OWNED BY {TABLE}.id;
CREATE TABLE billing_callrecord_default PARTITION OF {TABLE} DEFAULT;
"""

MOVE = f"""
INSERT INTO {TABLE} (id, created_at, {COLUMNS}) SELECT id, created_at, {COLUMNS} FROM {OLD};
SELECT setval('billing_callrecord_ids', coalesce(max(id), 0) + 1, false) FROM {OLD};
DROP TABLE {OLD};
ALTER TABLE {TABLE} ADD CONSTRAINT callrecord_one_row_per_call UNIQUE (tenant_id, request_id, created_at);
""" + _FOREIGN_KEYS

# Back to one table (as 0001-0006 left it), rows and ids kept.
UNPARTITION = _SET_ASIDE + f"""
ALTER TABLE {OLD} DROP CONSTRAINT IF EXISTS callrecord_one_row_per_call;
CREATE TABLE {TABLE} (
    id bigint NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY,{_BODY}
    CONSTRAINT billing_callrecord_request_id_key UNIQUE (request_id)
);
INSERT INTO {TABLE} (id, created_at, {COLUMNS}) OVERRIDING SYSTEM VALUE SELECT id, created_at, {COLUMNS} FROM {OLD};
SELECT setval(pg_get_serial_sequence('{TABLE}', 'id'), coalesce(max(id), 0) + 1, false) FROM {TABLE};
DROP TABLE {OLD};
CREATE INDEX billing_callrecord_tenant_id_c7a69f22 ON {TABLE} (tenant_id);
CREATE INDEX billing_callrecord_request_id_b18f240e_like ON {TABLE} (request_id varchar_pattern_ops);
""" + _FOREIGN_KEYS


def make_partitions(apps, schema_editor):
    """A partition for each month the old table has rows in and for the months due (made
    only: retention is the beat task's, once the rows are in)."""
    from apps.billing import partitions

    with schema_editor.connection.cursor() as cur:
        cur.execute(f"SELECT DISTINCT date_trunc('month', created_at AT TIME ZONE 'UTC')::date FROM {OLD}")
        months = {month for (month,) in cur.fetchall()}
    for month in sorted(months | set(partitions.months_due())):
        partitions.create(month)


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0006_draft_invoices"),
        ("tenants", "0007_apikey_scope"),
    ]
    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(CREATE, UNPARTITION),
                migrations.RunPython(make_partitions, migrations.RunPython.noop),
                migrations.RunSQL(MOVE, migrations.RunSQL.noop),
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="callrecord",
                    name="request_id",
                    field=models.CharField(max_length=40),
                ),
                migrations.AlterField(
                    model_name="callrecord",
                    name="tenant",
                    field=models.ForeignKey(db_index=False, on_delete=CASCADE, related_name="+", to="tenants.tenant"),
                ),
                migrations.AddConstraint(
                    model_name="callrecord",
                    constraint=models.UniqueConstraint(fields=("tenant", "request_id", "created_at"),
                                                       name="callrecord_one_row_per_call"),
                ),
            ],
        ),
    ]
