"""Tenant isolation as a property of the code.

Every tenant-owned model inherits `TenantOwned`. Its default manager fails closed: any
query that does not start from `.for_tenant(tenant)` raises `TenantScopeRequired`
instead of returning every tenant's rows. The one bypass has a name meant to stand out
in review.
"""

from django.db import models


class TenantScopeRequired(RuntimeError):
    pass


class TenantScopedManager(models.Manager):
    def get_queryset(self):
        raise TenantScopeRequired(
            f"{self.model.__name__} is tenant-owned: query it through "
            f"{self.model.__name__}.objects.for_tenant(tenant)"
        )

    def for_tenant(self, tenant) -> models.QuerySet:
        tenant_id = getattr(tenant, "pk", tenant)
        if tenant_id is None:
            raise TenantScopeRequired(f"{self.model.__name__}.objects.for_tenant() needs a saved tenant")
        return super().get_queryset().filter(tenant_id=tenant_id)

    def unscoped_across_all_tenants(self) -> models.QuerySet:
        """Every tenant's rows. Only for staff tooling (admin, ops commands)."""
        return super().get_queryset()


class TenantOwned(models.Model):
    # related_name "+" so no reverse manager on Tenant offers an unscoped path.
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")

    objects = TenantScopedManager()

    class Meta:
        abstract = True
