"""The cache table, hash-partitioned by tenant, each partition with its own HNSW index.

Django cannot create partitioned tables, so the database side is SQL; the state side is
the CacheEntry model, so Django still flushes the table in tests and knows its fields."""

import django.db.models.deletion
import pgvector.django.vector
from django.db import migrations, models

PARTITIONS = 16

CREATE = f"""
CREATE TABLE cache_entry (
    id bigint GENERATED ALWAYS AS IDENTITY,
    tenant_id bigint NOT NULL REFERENCES tenants_tenant (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    scope text NOT NULL DEFAULT '',
    context_key varchar(32) NOT NULL,
    exact_key varchar(64) NOT NULL,
    api_key_id uuid NULL,
    prompt_text text NOT NULL,
    embedding vector(384) NOT NULL,
    neighbour_stat double precision NULL,
    response jsonb NOT NULL,
    model varchar(100) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    hit_count integer NOT NULL DEFAULT 0,
    last_hit_at timestamptz NULL,
    PRIMARY KEY (tenant_id, id)
) PARTITION BY HASH (tenant_id);
{"".join(f"CREATE TABLE cache_entry_p{i} PARTITION OF cache_entry FOR VALUES WITH (MODULUS {PARTITIONS}, REMAINDER {i});" for i in range(PARTITIONS))}
CREATE UNIQUE INDEX cache_entry_exact ON cache_entry (tenant_id, exact_key);
CREATE INDEX cache_entry_context ON cache_entry (tenant_id, scope, context_key);
CREATE INDEX cache_entry_expiry ON cache_entry (expires_at);
CREATE INDEX cache_entry_api_key ON cache_entry (tenant_id, api_key_id);
CREATE INDEX cache_entry_embedding ON cache_entry USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64);
"""


class Migration(migrations.Migration):
    initial = True
    dependencies = [
        ("core", "0001_vector_extension"),
        ("tenants", "0004_tenant_cache_enabled_tenant_cache_high_temperature_and_more"),
    ]
    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(CREATE, "DROP TABLE cache_entry CASCADE;")],
            state_operations=[
                migrations.CreateModel(
                    name="CacheEntry",
                    fields=[
                        (
                            "pk",
                            models.CompositePrimaryKey(
                                "tenant_id", "id", blank=True, editable=False, primary_key=True, serialize=False
                            ),
                        ),
                        ("id", models.BigIntegerField()),
                        ("scope", models.TextField(default="")),
                        ("context_key", models.CharField(max_length=32)),
                        ("exact_key", models.CharField(max_length=64)),
                        ("prompt_text", models.TextField()),
                        ("embedding", pgvector.django.vector.VectorField(dimensions=384)),
                        ("neighbour_stat", models.FloatField(null=True)),
                        ("response", models.JSONField()),
                        ("model", models.CharField(max_length=100)),
                        ("created_at", models.DateTimeField()),
                        ("expires_at", models.DateTimeField()),
                        ("hit_count", models.IntegerField(default=0)),
                        ("last_hit_at", models.DateTimeField(null=True)),
                        (
                            "api_key",
                            models.ForeignKey(
                                db_constraint=False,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to="tenants.apikey",
                            ),
                        ),
                        (
                            "tenant",
                            models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="+", to="tenants.tenant"),
                        ),
                    ],
                    options={
                        "db_table": "cache_entry",
                    },
                ),
            ],
        ),
    ]
