"""What the cache's settings commands share: the tenant by slug, and one change made
through the cache's settings service with its validation errors as a command error."""

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from apps.cache.models import CacheSettings
from apps.cache.services import cache_settings_update
from apps.tenants.models import Tenant


def change_settings(slug: str, changes: dict) -> tuple[Tenant, CacheSettings]:
    try:
        tenant = Tenant.objects.get(slug=slug)
    except Tenant.DoesNotExist:
        raise CommandError(f"no tenant with slug {slug}") from None
    try:
        return tenant, cache_settings_update(tenant=tenant, changes=changes)
    except ValidationError as err:
        raise CommandError("; ".join(err.messages)) from None
