"""The cache table partitioned by HASH (tenant_id, context_key) into 64 partitions.

Partitioned by tenant alone, a large tenant's minor contexts shared one HNSW graph with its
main context: a filtered search there walked thousands of other-context nodes before
finding 20 of its own, and at 1M entries those lookups took 15-24 ms p99. With the context
in the partition key a lookup lands in a partition holding (mostly) its own context, and
every query names both columns, so Postgres prunes to that one partition
(bench/cache_scale). The partition key cannot be altered in place: the rows move into
the new table, ids and all, so the ledger's links to cache entries stay valid.
"""

import importlib

from django.db import migrations, models

PARTITIONS = 64

PREVIOUS = importlib.import_module("apps.cache.migrations.0001_partitioned_cache").CREATE
# The same columns in the same order (the move below copies rows with SELECT *).
COLUMNS = PREVIOUS[PREVIOUS.index("(") + 1:PREVIOUS.index("PRIMARY KEY")].rstrip()

CREATE = f"""
CREATE TABLE cache_entry ({COLUMNS}
    PRIMARY KEY (tenant_id, context_key, id)
) PARTITION BY HASH (tenant_id, context_key);
{"".join(f"CREATE TABLE cache_entry_p{i} PARTITION OF cache_entry FOR VALUES WITH (MODULUS {PARTITIONS}, REMAINDER {i});" for i in range(PARTITIONS))}
CREATE UNIQUE INDEX cache_entry_exact ON cache_entry (tenant_id, context_key, exact_key);
CREATE INDEX cache_entry_context ON cache_entry (tenant_id, context_key, scope);
CREATE INDEX cache_entry_expiry ON cache_entry (expires_at);
CREATE INDEX cache_entry_api_key ON cache_entry (tenant_id, api_key_id);
CREATE INDEX cache_entry_embedding ON cache_entry USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64);
"""


def moving_into(create: str) -> str:
    """Recreates the table with `create`, keeping every row and id (same column order)."""
    return f"""
CREATE TEMPORARY TABLE cache_entry_moving AS SELECT * FROM cache_entry;
DROP TABLE cache_entry CASCADE;
{create}
INSERT INTO cache_entry OVERRIDING SYSTEM VALUE SELECT * FROM cache_entry_moving;
SELECT setval(pg_get_serial_sequence('cache_entry', 'id'), coalesce(max(id), 0) + 1, false) FROM cache_entry;
DROP TABLE cache_entry_moving;
"""


class Migration(migrations.Migration):
    dependencies = [("cache", "0001_partitioned_cache")]
    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(moving_into(CREATE), moving_into(PREVIOUS))],
            state_operations=[
                migrations.AlterField(
                    model_name="cacheentry",
                    name="pk",
                    field=models.CompositePrimaryKey("tenant_id", "context_key", "id", blank=True, editable=False,
                                                     primary_key=True, serialize=False),
                ),
            ],
        ),
    ]
