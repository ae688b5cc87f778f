"""cache_entry.demoted_at: an entry a tenant flagged as a wrong semantic answer. Added on
the partitioned parent, so every partition gets it (nullable: no rewrite)."""

from django.db import migrations, models

ADD = "ALTER TABLE cache_entry ADD COLUMN demoted_at timestamptz NULL"

class Migration(migrations.Migration):
    dependencies = [("cache", "0004_copy_tenant_cache_settings")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(ADD, "ALTER TABLE cache_entry DROP COLUMN demoted_at")],
            state_operations=[migrations.AddField("cacheentry", "demoted_at", models.DateTimeField(null=True))],
        ),
    ]
