"""Admin for the dashboard's rollups."""

from django.contrib import admin

from apps.tenants.admin import AcrossTenantsAdmin, ReadOnly

from .models import CallRollup, LatencyRollup, RollupState


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
