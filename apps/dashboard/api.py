"""GET/PATCH /api/settings/: the tenant's settings as one object, composed from the apps
that own them (tenants: name, prompt logging, plan; cache: the `cache_` keys, also at
/api/cache/settings/). Each part is validated by its owner's serializer and saved by its
owner's service; the composition lives here because the dashboard may import every app
and none of them may import each other upwards."""

from collections.abc import Mapping
from datetime import timedelta

from django.db import transaction
from django.utils import timezone
from rest_framework.decorators import api_view
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from apps.audit.services import audit_changes
from apps.billing import selectors as ledger
from apps.cache import services as cache_services
from apps.cache.selectors import cache_settings_for
from apps.cache.serializers import CacheSettingsSerializer
from apps.routing import selectors as feedback
from apps.tenants import services as tenant_services
from apps.tenants.serializers import TenantSettingsSerializer

CACHE = "cache_"
OBSERVED_DAYS = 30


def _prefixed(data: Mapping, prefix: str) -> dict:
    return {f"{prefix}{name}": value for name, value in data.items()}


def _unprefixed(data, prefix: str) -> dict:
    if not isinstance(data, Mapping):
        return {}  # the tenant part answers for a body that is not an object
    return {name.removeprefix(prefix): value for name, value in data.items() if name.startswith(prefix)}


@api_view(["GET", "PATCH"])
def tenant_settings(request):
    """The calling tenant's settings; PATCH changes them (every process within seconds)."""
    tenant, cache = request.tenant, cache_settings_for(tenant=request.tenant)
    if request.method == "PATCH":
        tenant_form = TenantSettingsSerializer(tenant, data=request.data, partial=True)
        cache_form = CacheSettingsSerializer(cache, data=_unprefixed(request.data, CACHE), partial=True)
        # Every part is checked before any is saved, and all errors are answered at once.
        errors = {}
        if not tenant_form.is_valid():
            errors.update(tenant_form.errors)
        if not cache_form.is_valid():
            errors.update(_prefixed(cache_form.errors, CACHE))
        if errors:
            raise ValidationError(errors)
        with transaction.atomic():
            # Audited as the dashboard's settings page is: one event per changed value.
            if tenant_form.validated_data:
                before = {name: getattr(tenant, name) for name in tenant_form.validated_data}
                tenant = tenant_services.tenant_update_settings(tenant=tenant, changes=tenant_form.validated_data)
                audit_changes(tenant=tenant, actor=request.user, area="tenant", before=before,
                              after=tenant_form.validated_data)
            if cache_form.validated_data:
                before = {name: getattr(cache, name) for name in cache_form.validated_data}
                cache = cache_services.cache_settings_update(tenant=tenant, changes=cache_form.validated_data)
                audit_changes(tenant=tenant, actor=request.user, area="cache", before=before,
                              after=cache_form.validated_data)
    return Response({**TenantSettingsSerializer(tenant).data, **_prefixed(CacheSettingsSerializer(cache).data, CACHE),
                     **_observed_wrong_hits(tenant)})


def _observed_wrong_hits(tenant) -> dict:
    """Semantic hits in the last 30 days, and the share the tenant's feedback called wrong
    (read-only: shown beside the threshold it judges)."""
    since = timezone.now() - timedelta(days=OBSERVED_DAYS)
    hits = ledger.semantic_hits(tenant=tenant, since=since)
    wrong = ledger.semantic_hits(tenant=tenant, since=since, among=feedback.negative_request_ids(tenant=tenant, since=since))
    return {"semantic_hits_30d": hits, "semantic_hits_judged_wrong_30d": wrong,
            "observed_wrong_hit_rate": round(wrong / hits, 4) if hits else None}
