"""Deleting cache entries: by tenant, by API key, by entry, by prompt text (erasure
requests), and everything expired. Each tenant-facing purge is scoped to the tenant."""

from django.db import transaction
from django.utils import timezone

from apps.tenants.selectors import access_api_key

from .models import CacheEntry
from .services import cache_settings_update


def _delete(queryset) -> int:
    return queryset._raw_delete(queryset.db)  # no relations point at cache entries


@transaction.atomic
def _purge(tenant, queryset) -> int:
    """Deletes after moving the tenant's cache generation on, in one transaction: a call in
    flight, which looked the cache up before, cannot store its answer afterwards."""
    cache_settings_update(tenant=tenant, changes={}, new_generation=True)
    return _delete(queryset)


def purge_tenant(*, tenant) -> int:
    return _purge(tenant, CacheEntry.objects.for_tenant(tenant))


def purge_api_key(*, tenant, key_id) -> int:
    key = access_api_key(tenant=tenant, key_id=key_id)  # 404 for another tenant's key
    return _purge(tenant, CacheEntry.objects.for_tenant(tenant).filter(api_key_id=key.pk))


def purge_entry(*, tenant, entry_id: int) -> int:
    return _purge(tenant, CacheEntry.objects.for_tenant(tenant).filter(id=entry_id))


def purge_prompt(*, tenant, text: str) -> int:
    """Every entry whose prompt contains `text` (case-insensitive): for erasure requests."""
    return _purge(tenant, CacheEntry.objects.for_tenant(tenant).filter(prompt_text__icontains=text))


def purge_expired() -> int:
    """Housekeeping across all tenants (the periodic task)."""
    return _delete(CacheEntry.objects.unscoped_across_all_tenants().filter(expires_at__lte=timezone.now()))
