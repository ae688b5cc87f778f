from django import forms
from django.contrib import admin

from .models import ApiKey, Membership, Plan, Tenant


class AcrossTenantsForm(forms.ModelForm):
    """A staff form over a tenant's rows. Django's own uniqueness and constraint checks query
    the model's default manager unscoped, which fails closed (TenantScopeRequired, a 500 on
    every add or change); here each unique key is asked across tenants instead."""

    def _post_clean(self):
        # The model's constraint checks run inside (full_clean); validate_unique covers them.
        self.instance.validate_constraints = lambda exclude=None: None
        try:
            super()._post_clean()
        finally:
            del self.instance.validate_constraints

    def validate_unique(self):
        model, instance = self._meta.model, self.instance
        others = model.objects.unscoped_across_all_tenants()
        if not instance._state.adding:
            others = others.exclude(pk=instance.pk)
        keys = [(f.name,) for f in model._meta.local_fields if f.unique]
        keys += [tuple(c.fields) for c in model._meta.total_unique_constraints]
        for key in keys:
            if any(name in self.errors for name in key):
                continue
            values = {model._meta.get_field(name).attname: getattr(instance, model._meta.get_field(name).attname)
                      for name in key}
            if None not in values.values() and others.filter(**values).exists():
                self.add_error(None, f"A {model._meta.verbose_name} with this {' and '.join(key)} already exists.")


class AcrossTenantsAdmin(admin.ModelAdmin):
    """Staff see every tenant's rows; this is the one sanctioned place for it."""

    form = AcrossTenantsForm

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
    # Saved here, a plan would skip billing: Stripe would bill the old price, and its next
    # subscription event put the old plan back. The owner changes it on the dashboard.
    readonly_fields = ["plan"]


@admin.register(Membership)
class MembershipAdmin(AcrossTenantsAdmin):
    list_display = ["user", "tenant", "role"]
    list_select_related = ["user", "tenant"]


@admin.register(ApiKey)
class ApiKeyAdmin(AcrossTenantsAdmin):
    list_display = ["prefix", "name", "tenant", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "secret_hash", "created_at", "last_used_at"]
    list_select_related = ["tenant"]
