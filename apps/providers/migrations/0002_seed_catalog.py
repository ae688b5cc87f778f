from django.db import migrations


def seed(apps, schema_editor):
    from apps.providers.catalog import sync_from_seed

    sync_from_seed(apps.get_model("providers", "CatalogModel"))


class Migration(migrations.Migration):
    dependencies = [("providers", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
