from django.contrib import admin

from apps.tenants.admin import AcrossTenantsAdmin, AcrossTenantsForm

from .models import CacheSettings


class CacheSettingsForm(AcrossTenantsForm):
    class Meta:
        model = CacheSettings
        fields = ["tenant", "enabled", "target_wrong_hit_rate", "threshold", "ttl_seconds", "user_scope", "tool_calls",
                  "high_temperature"]


@admin.register(CacheSettings)
class CacheSettingsAdmin(AcrossTenantsAdmin):
    """Staff tune a tenant's target wrong-hit rate (and, as experts, its threshold) here. A
    tenant that never changed its settings has no row yet (it runs on the defaults): add one
    to tune it."""

    form = CacheSettingsForm
    list_display = ["tenant", "enabled", "target_wrong_hit_rate", "threshold", "ttl_seconds", "user_scope",
                    "tool_calls", "high_temperature"]
    list_select_related = ["tenant"]
    search_fields = ["tenant__slug", "tenant__name"]
    autocomplete_fields = ["tenant"]

    def get_readonly_fields(self, request, obj=None):
        return ["tenant"] if obj else []
