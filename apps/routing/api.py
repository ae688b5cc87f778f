"""Routing control for a tenant under /api/routing/."""

from django.db import transaction
from rest_framework.decorators import api_view
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from apps.audit.services import audit_changes

from . import services
from .selectors import routing_settings_for
from .serializers import RoutingSettingsSerializer


@api_view(["GET", "PATCH"])
def routing_settings(request):
    """The tenant's routing settings; PATCH changes them (every gateway within seconds)."""
    current = routing_settings_for(tenant=request.tenant)
    if request.method == "GET":
        return Response(RoutingSettingsSerializer(current).data)
    form = RoutingSettingsSerializer(current, data=request.data, partial=True)
    form.is_valid(raise_exception=True)
    before = {name: getattr(current, name) for name in form.validated_data}
    try:
        with transaction.atomic():
            changed = services.routing_settings_update(tenant=request.tenant, **form.validated_data)
            # Audited as the dashboard's settings page is: one event per changed value.
            audit_changes(tenant=request.tenant, actor=request.user, area="routing", before=before,
                          after={name: getattr(changed, name) for name in before})
    except services.InvalidSettings as exc:
        raise ValidationError(exc.errors) from exc
    return Response(RoutingSettingsSerializer(changed).data)
