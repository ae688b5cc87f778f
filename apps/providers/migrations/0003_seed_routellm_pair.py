from django.db import migrations


def seed(apps, schema_editor):
    """Databases seeded before gpt-4-1106-preview and mixtral-8x7b-instruct-v0.1 joined the
    seed file get them here (a fresh database already has them from 0002, which reads the
    current file; this rerun only refreshes rows from the seed)."""
    from apps.providers.catalog import sync_from_seed

    sync_from_seed(apps.get_model("providers", "CatalogModel"))


class Migration(migrations.Migration):
    dependencies = [("providers", "0002_seed_catalog")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
