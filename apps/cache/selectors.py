from django.db import connection

from . import verifier
from .models import CacheSettings

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


def cache_settings_for(*, tenant) -> CacheSettings:
    """The tenant's cache settings (a tenant or its id): its row, or, before its first
    change, an unsaved one with the defaults."""
    tenant_id = getattr(tenant, "pk", tenant)
    return CacheSettings.objects.for_tenant(tenant_id).first() or CacheSettings(tenant_id=tenant_id)


def semantic_floor() -> float:
    """The lowest target wrong-hit rate that serves semantic hits (below it only exact
    repeats hit): the shipped calibration's strict end."""
    return verifier.model().floor()
