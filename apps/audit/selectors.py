from .models import AuditEvent


def audit_trail(*, tenant, limit: int = 50):
    """The tenant's latest changes, newest first."""
    return AuditEvent.objects.for_tenant(tenant).order_by("-created_at", "-id")[:limit]


def audit_trail_all(*, limit: int = 200):
    """Every tenant's latest changes, for the staff console."""
    return (AuditEvent.objects.unscoped_across_all_tenants().select_related("tenant")
            .order_by("-created_at", "-id")[:limit])
