from datetime import datetime

from .models import Feedback, RoutingSettings

# Below this a verdict says the answer was wrong.
NEGATIVE = 0.0


def negative_request_ids(*, tenant, since: datetime):
    """The request ids of the calls the tenant said were answered wrongly since `since`
    (a query: filter by it, as a subquery, or list it)."""
    return (Feedback.objects.for_tenant(tenant).filter(score__lt=NEGATIVE, created_at__gte=since)
            .values_list("request_id", flat=True))


def routing_settings_for(*, tenant) -> RoutingSettings:
    """The tenant's routing settings (a tenant or its id): its row, or, before its first
    change, an unsaved one with the defaults."""
    tenant_id = getattr(tenant, "pk", tenant)
    return RoutingSettings.objects.for_tenant(tenant_id).first() or RoutingSettings(tenant_id=tenant_id)
