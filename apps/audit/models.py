from django.conf import settings
from django.db import models
from django.db.models.functions import Now

from apps.tenants.scoping import TenantOwned


class AuditEvent(TenantOwned):
    """One changed value of a tenant's settings, members or keys: who, when, old and new.
    Rows are only ever added (apps.audit.services.audit_changes)."""

    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    # The actor's email when the change was made: the trail still reads after a user is gone.
    actor_email = models.CharField(max_length=254, blank=True)
    staff = models.BooleanField(default=False)  # made by our staff, not by the tenant
    area = models.CharField(max_length=30)      # cache | billing | tenant | members | keys | ...
    field = models.CharField(max_length=254)    # a setting's name, or a member's email (area "members")
    old_value = models.JSONField(null=True)
    new_value = models.JSONField(null=True)
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        indexes = [models.Index(fields=["tenant", "-created_at"], name="auditevent_tenant_time"),
                   models.Index(fields=["-created_at"], name="auditevent_time")]

    def __str__(self) -> str:
        return f"{self.area}.{self.field}: {self.old_value!r} -> {self.new_value!r}"
