from django import forms
from django.contrib import admin

from apps.tenants.admin import AcrossTenantsAdmin

from .models import CacheSettings


class CacheSettingsForm(forms.ModelForm):
    class Meta:
        model = CacheSettings
        fields = ["tenant", "enabled", "target_wrong_hit_rate", "threshold", "ttl_seconds", "user_scope", "tool_calls",
                  "high_temperature"]

    def validate_unique(self):
        # The model's own check would query the fail-closed manager unscoped (and raise);
        # one row per tenant is asked of that tenant alone.
        tenant = self.cleaned_data.get("tenant")
        if self.instance._state.adding and tenant and CacheSettings.objects.for_tenant(tenant).exists():
            self.add_error("tenant", "This tenant already has cache settings; change those.")


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
