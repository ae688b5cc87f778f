from django.db import migrations

# The models of the seed file that read OpenAI's file (PDF) parts; a database seeded before
# the capability existed would refuse those parts for them. Other fields, perhaps edited in
# the admin since, are left as they are.
READ_FILES = ("gpt-4o", "gpt-4o-mini", "gpt-4.1")


def add_file(apps, schema_editor):
    for row in apps.get_model("providers", "CatalogModel").objects.filter(model_id__in=READ_FILES):
        if "file" not in row.capabilities:
            row.capabilities = [*row.capabilities, "file"]
            row.save(update_fields=["capabilities"])


class Migration(migrations.Migration):
    dependencies = [("providers", "0003_seed_routellm_pair")]
    operations = [migrations.RunPython(add_file, migrations.RunPython.noop)]
