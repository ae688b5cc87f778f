from django.contrib import admin

from .models import ApiKey, Membership, Plan, Tenant


class AcrossTenantsAdmin(admin.ModelAdmin):
    """Staff see every tenant's rows; this is the one sanctioned place for it."""

    def get_queryset(self, request):
        return self.model.objects.unscoped_across_all_tenants()


class ReadOnly:
    """Rows written only by the code (the ledger, rollups, meter windows): staff look, never edit."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = ["name", "price_per_call_cents", "requests_per_minute", "key_requests_per_minute"]


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "plan", "status", "created_at"]
    list_filter = ["status", "plan"]
    search_fields = ["slug", "name"]


@admin.register(Membership)
class MembershipAdmin(AcrossTenantsAdmin):
    list_display = ["user", "tenant", "role"]
    list_select_related = ["user", "tenant"]


@admin.register(ApiKey)
class ApiKeyAdmin(AcrossTenantsAdmin):
    list_display = ["prefix", "name", "tenant", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "secret_hash", "created_at", "last_used_at"]
    list_select_related = ["tenant"]
