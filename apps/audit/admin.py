from django.contrib import admin

from apps.tenants.admin import AcrossTenantsAdmin

from .models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(AcrossTenantsAdmin):
    list_display = ["created_at", "tenant", "actor_email", "staff", "area", "field", "old_value", "new_value"]
    list_filter = ["area", "staff", "created_at"]
    search_fields = ["tenant__slug", "actor_email", "field"]
    list_select_related = ["tenant"]
    readonly_fields = [f.name for f in AuditEvent._meta.fields]

    def has_add_permission(self, request):
        return False  # the trail is written by the changes themselves

    def has_change_permission(self, request, obj=None):
        return False
