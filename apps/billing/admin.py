from django.contrib import admin

from apps.tenants.admin import AcrossTenantsAdmin, ReadOnly

from .models import (
    BillingAccount,
    BillingSettings,
    CallRecord,
    Invoice,
    MeterDiscrepancy,
    MeterWindow,
    PlanBilling,
    StripeCatalog,
    WebhookEvent,
)


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


@admin.register(BillingAccount)
class BillingAccountAdmin(AcrossTenantsAdmin):
    list_display = ["tenant", "stripe_customer_id", "subscription_status", "has_payment_method", "unpaid_since",
                    "monthly_call_cap"]
    list_filter = ["subscription_status", "has_payment_method"]
    search_fields = ["tenant__slug", "stripe_customer_id"]
    list_select_related = ["tenant"]
    # Stripe's ids are written by the webhooks and the outbox; staff set only the cap.
    readonly_fields = ["tenant", "stripe_customer_id", "stripe_subscription_id", "stripe_subscription_item_id",
                       "stripe_price_id", "subscription_status", "has_payment_method", "unpaid_since",
                       "standing_as_of", "subscription_as_of"]


@admin.register(PlanBilling)
class PlanBillingAdmin(admin.ModelAdmin):
    list_display = ["plan_name", "price_cents", "monthly_call_cap", "stripe_price_id"]


@admin.register(StripeCatalog)
class StripeCatalogAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ["name", "stripe_id"]


@admin.register(MeterWindow)
class MeterWindowAdmin(ReadOnly, AcrossTenantsAdmin):
    list_display = ["start", "tenant", "seconds", "quantity", "state", "attempts", "acked_at", "last_error"]
    list_filter = ["state", "start"]
    search_fields = ["identifier", "tenant__slug"]
    list_select_related = ["tenant"]
    show_full_result_count = False


@admin.register(Invoice)
class InvoiceAdmin(ReadOnly, AcrossTenantsAdmin):
    list_display = ["number", "tenant", "period_start", "status", "calls", "late_calls", "subtotal_cents",
                    "tax_cents", "total_cents", "stripe_invoice_id", "paid_at"]
    list_filter = ["status", "period_start"]
    search_fields = ["number", "tenant__slug", "stripe_invoice_id"]
    list_select_related = ["tenant"]


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ["event_id", "type", "received_at"]
    list_filter = ["type"]
    search_fields = ["event_id"]


@admin.register(MeterDiscrepancy)
class MeterDiscrepancyAdmin(AcrossTenantsAdmin):
    list_display = ["day", "tenant", "ours", "stripes", "found_at", "resolved_at"]
    list_filter = ["resolved_at", "day"]
    search_fields = ["tenant__slug"]
    list_select_related = ["tenant"]
    readonly_fields = ["tenant", "day", "ours", "stripes", "found_at"]  # staff only mark one resolved
