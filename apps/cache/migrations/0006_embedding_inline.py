"""cache_entry.embedding stored inline (PLAIN), so that a lookup's distances read only the
heap page and the answer is the column TOAST moves out of line.

pgvector's type defaults to EXTERNAL. A row with a 1.5 kB vector and an answer of a few
hundred tokens exceeds the 2 kB TOAST threshold, and the largest toastable column, the
vector, went out of line. The planner does not cost fetching it: at 2,401 entries in one
context (bench/overhead) it chose a sequential scan that fetched the vector from the TOAST
table for every distance, 14,737 buffer hits and 12.8 ms; with the vector inline the same
lookup takes the HNSW index, 477 buffer hits and 0.2 ms (a forced sequential scan 1.1 ms).

SET STORAGE on the partitioned parent recurses to every partition, and rows written from
then on follow it; existing rows keep their stored form until rewritten. The rewrite
below moves only the rows whose vector is out of line (PostgreSQL 17+
pg_column_toast_chunk_id), one partition per transaction: an UPDATE, not VACUUM FULL,
because lookups keep reading during it (VACUUM FULL would lock each partition against
them); concurrent writes to the same rows wait for their partition's commit. The cast
makes a fresh value (an unchanged one would keep its TOAST pointer) with the same floats.
10,001 entries took 3.5 s; their old row versions are left to autovacuum. Safe to run again.
Reversing restores the type's default; rows stay as they are (both forms read the same).
"""

from django.db import migrations

PARTITIONS = 64
INLINE = "ALTER TABLE cache_entry ALTER COLUMN embedding SET STORAGE PLAIN"

REWRITE = """
UPDATE cache_entry_p{i} SET embedding = embedding::real[]::vector
WHERE pg_column_toast_chunk_id(embedding) IS NOT NULL
"""


class Migration(migrations.Migration):
    # One transaction per partition's rewrite, not one for the whole table.
    atomic = False

    dependencies = [("cache", "0005_entry_demotion")]

    operations = [
        migrations.RunSQL(INLINE, "ALTER TABLE cache_entry ALTER COLUMN embedding SET STORAGE EXTERNAL"),
        *(migrations.RunSQL(REWRITE.format(i=i), migrations.RunSQL.noop) for i in range(PARTITIONS)),
    ]
