"""Routing control for a tenant under /api/routing/."""

from rest_framework.decorators import api_view
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

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
    try:
        changed = services.routing_settings_update(tenant=request.tenant, **form.validated_data)
    except services.InvalidSettings as exc:
        raise ValidationError(exc.errors) from exc
    return Response(RoutingSettingsSerializer(changed).data)
