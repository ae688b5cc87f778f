from django.db import connection
from django.db.models import Count, Sum

from .models import CacheEntry


def cache_stats(*, tenant) -> dict:
    """Entry count, stored size and hits of one tenant's cache."""
    totals = CacheEntry.objects.for_tenant(tenant).aggregate(entries=Count("id"), hits=Sum("hit_count"))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COALESCE(SUM(pg_column_size(c.*)), 0) FROM cache_entry c WHERE tenant_id = %s", [tenant.pk])
        size = cursor.fetchone()[0]
    return {"entries": totals["entries"], "hits": totals["hits"] or 0, "size_bytes": int(size)}
