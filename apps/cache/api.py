"""Cache control for a tenant under /api/cache/: stats, purges and settings."""

from django.db import transaction
from django.http import Http404
from rest_framework.decorators import api_view
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response

from apps.audit.services import audit_changes

from . import purge, services
from .selectors import cache_settings_for, cache_stats
from .serializers import CacheSettingsSerializer


def _require_manager(request) -> None:
    if not request.can_manage:
        raise PermissionDenied("Only the tenant's owners and admins may purge the cache.")


@api_view(["GET", "DELETE"])
def cache_collection(request):
    """GET: entry count, size and hits. DELETE: everything, or with ?prompt=TEXT every
    entry whose prompt contains TEXT."""
    if request.method == "GET":
        return Response(cache_stats(tenant=request.tenant))
    _require_manager(request)
    text = request.query_params.get("prompt")
    if text is not None:
        if len(text.strip()) < 3:
            raise ValidationError({"prompt": "Give at least 3 characters of the prompt to erase."})
        if "\x00" in text:  # stored prompts never hold NUL (PostgreSQL text cannot)
            raise ValidationError({"prompt": "The text must not contain NUL characters."})
        return Response({"deleted": purge.purge_prompt(tenant=request.tenant, text=text)})
    return Response({"deleted": purge.purge_tenant(tenant=request.tenant)})


@api_view(["DELETE"])
def cache_by_key(request, key_id):
    _require_manager(request)
    return Response({"deleted": purge.purge_api_key(tenant=request.tenant, key_id=key_id)})


@api_view(["DELETE"])
def cache_entry(request, entry_id: int):
    _require_manager(request)
    deleted = purge.purge_entry(tenant=request.tenant, entry_id=entry_id)
    if not deleted:
        raise Http404("No such cache entry")
    return Response({"deleted": deleted})


@api_view(["GET", "PATCH"])
def cache_settings(request):
    """The tenant's cache settings; PATCH changes them (every gateway within seconds)."""
    current = cache_settings_for(tenant=request.tenant)
    if request.method == "GET":
        return Response(CacheSettingsSerializer(current).data)
    form = CacheSettingsSerializer(current, data=request.data, partial=True)
    form.is_valid(raise_exception=True)
    before = {name: getattr(current, name) for name in form.validated_data}
    with transaction.atomic():
        changed = services.cache_settings_update(tenant=request.tenant, changes=form.validated_data)
        # Audited as the dashboard's settings page is: one event per changed value.
        audit_changes(tenant=request.tenant, actor=request.user, area="cache", before=before,
                      after=form.validated_data)
    return Response(CacheSettingsSerializer(changed).data)
