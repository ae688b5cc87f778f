from django.db import migrations

PLANS = [
    # name, cents per call, tenant rpm, per-key rpm
    ("Starter", 10, 600, 300),
    ("Growth", 7, 3000, 1500),
    ("Scale", 5, 12000, 6000),
]


def seed(apps, schema_editor):
    Plan = apps.get_model("tenants", "Plan")
    for name, cents, rpm, key_rpm in PLANS:
        Plan.objects.update_or_create(
            name=name,
            defaults={"price_per_call_cents": cents, "requests_per_minute": rpm, "key_requests_per_minute": key_rpm},
        )


class Migration(migrations.Migration):
    dependencies = [("tenants", "0001_initial"), ("core", "0001_vector_extension")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
