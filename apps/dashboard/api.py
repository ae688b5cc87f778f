"""The management API's parts that compose apps or audit as the dashboard does.

GET/PATCH /api/settings/: the tenant's settings as one object, composed from the apps
that own them (tenants: name, prompt logging, plan; cache: the `cache_` keys, also at
/api/cache/settings/). Each part is validated by its owner's serializer and saved by its
owner's service; the composition lives here because the dashboard may import every app
and none of them may import each other upwards.

/api/keys/ (list, create) and /api/keys/<id>/ (show, revoke): through the dashboard's own
key services, so a key made or revoked either way leaves the same audit events."""

from collections.abc import Mapping

from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import api_view
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from apps.audit.services import audit_changes
from apps.cache import services as cache_services
from apps.cache.selectors import cache_settings_for
from apps.cache.serializers import CacheSettingsSerializer
from apps.tenants import selectors as tenant_selectors
from apps.tenants import services as tenant_services
from apps.tenants.serializers import ApiKeyCreateSerializer, ApiKeySerializer, TenantSettingsSerializer

from . import services
from .selectors import observed_wrong_hits

CACHE = "cache_"


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
                     **observed_wrong_hits(tenant=tenant)})


@extend_schema(methods=["GET"], responses=ApiKeySerializer(many=True))
@extend_schema(methods=["POST"], request=ApiKeyCreateSerializer, responses={201: ApiKeySerializer})
@api_view(["GET", "POST"])
def keys_collection(request):
    if request.method == "GET":
        keys = tenant_selectors.api_key_list(tenant=request.tenant)
        return Response({"data": ApiKeySerializer(keys, many=True).data})
    form = ApiKeyCreateSerializer(data=request.data)
    form.is_valid(raise_exception=True)
    key, raw = services.key_create(tenant=request.tenant, actor=request.user, name=form.validated_data["name"],
                                   scope=form.validated_data["scope"])
    # The only response that ever carries the secret.
    return Response({**ApiKeySerializer(key).data, "key": raw}, status=status.HTTP_201_CREATED)


@extend_schema(responses=ApiKeySerializer)
@api_view(["GET", "DELETE"])
def key_detail(request, key_id):
    if request.method == "GET":
        return Response(ApiKeySerializer(tenant_selectors.access_api_key(tenant=request.tenant, key_id=key_id)).data)
    key = services.key_revoke(tenant=request.tenant, actor=request.user, key_id=key_id)
    return Response(ApiKeySerializer(key).data)
