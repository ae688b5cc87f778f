"""Admin for the dashboard's rollups, and for the ledger and billing settings, which the
billing app does not register itself (it has no admin module)."""

from django.contrib import admin

from apps.billing.models import BillingSettings, CallRecord
from apps.tenants.admin import AcrossTenantsAdmin

from .models import CallRollup, LatencyRollup, RollupState


class ReadOnly:
    """Rows written only by the code (the ledger, rollups): staff look, never edit."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(CallRecord)
class CallRecordAdmin(ReadOnly, AcrossTenantsAdmin):
    list_display = ["created_at", "tenant", "request_id", "model_served", "cache", "route", "speculation_outcome",
                    "status_code", "provider_cost_micros", "counterfactual_cost_micros", "price_cents", "latency_ms"]
    list_filter = ["cache", "status_code", "route", "speculation_outcome", "billable", "endpoint", "created_at"]
    search_fields = ["request_id", "tenant__slug", "model_served"]
    list_select_related = ["tenant"]
    show_full_result_count = False  # a count of the whole ledger would take seconds
    date_hierarchy = "created_at"


@admin.register(BillingSettings)
class BillingSettingsAdmin(AcrossTenantsAdmin):
    list_display = ["tenant", "baseline_model"]
    list_select_related = ["tenant"]
    search_fields = ["tenant__slug"]

    def get_readonly_fields(self, request, obj=None):
        return ["tenant"] if obj else []


@admin.register(CallRollup)
class CallRollupAdmin(ReadOnly, AcrossTenantsAdmin):
    list_display = ["hour", "tenant", "model", "cache", "route", "outcome", "billable", "calls", "errors",
                    "provider_cost_micros", "counterfactual_cost_micros", "price_cents"]
    list_filter = ["cache", "route", "outcome", "billable", "hour"]
    search_fields = ["tenant__slug", "model"]
    list_select_related = ["tenant"]


@admin.register(LatencyRollup)
class LatencyRollupAdmin(ReadOnly, AcrossTenantsAdmin):
    list_display = ["hour", "tenant", "calls"]
    list_filter = ["hour"]
    search_fields = ["tenant__slug"]
    list_select_related = ["tenant"]


@admin.register(RollupState)
class RollupStateAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ["through", "refreshed_at"]
