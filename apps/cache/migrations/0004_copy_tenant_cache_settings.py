"""Every tenant's cache settings move from its Tenant columns into its CacheSettings row,
unchanged; the Tenant columns are dropped next (tenants 0006). Reversible: going back,
the rows' values are written into the restored columns."""

from django.db import migrations

FIELDS = ("enabled", "threshold", "ttl_seconds", "user_scope", "tool_calls", "high_temperature")


def copy_from_tenants(apps, schema_editor):
    Tenant = apps.get_model("tenants", "Tenant")
    CacheSettings = apps.get_model("cache", "CacheSettings")
    columns = [f"cache_{name}" for name in FIELDS]
    CacheSettings.objects.bulk_create(
        (CacheSettings(tenant_id=row["id"], **{name: row[f"cache_{name}"] for name in FIELDS})
         for row in Tenant.objects.values("id", *columns).iterator()),
        batch_size=1000,
    )


def copy_to_tenants(apps, schema_editor):
    Tenant = apps.get_model("tenants", "Tenant")
    CacheSettings = apps.get_model("cache", "CacheSettings")
    for row in CacheSettings.objects.iterator():
        Tenant.objects.filter(pk=row.tenant_id).update(**{f"cache_{name}": getattr(row, name) for name in FIELDS})


class Migration(migrations.Migration):
    dependencies = [
        ("cache", "0003_tenant_cache_settings"),
        ("tenants", "0005_cache_threshold_default"),
    ]
    operations = [migrations.RunPython(copy_from_tenants, copy_to_tenants)]
