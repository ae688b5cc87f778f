from django.db import connection

# One pass over the tenant's entries (in every partition: its contexts hash across them).
STATS = """
SELECT count(*), COALESCE(sum(hit_count), 0), COALESCE(sum(pg_column_size(c.*)), 0)
FROM cache_entry c WHERE tenant_id = %s
"""


def cache_stats(*, tenant) -> dict:
    """Entry count, stored size and hits of one tenant's cache."""
    with connection.cursor() as cursor:
        cursor.execute(STATS, [tenant.pk])
        entries, hits, size = cursor.fetchone()
    return {"entries": entries, "hits": int(hits), "size_bytes": int(size)}
