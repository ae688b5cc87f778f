"""API key scopes. Keys issued before scopes existed become `inference` keys: they keep
calling the gateway, and lose the management API (which every key had, unasked). Owners
who automate the management API issue an `admin` key for it (keys page, the API with a
logged-in session, or `manage.py issue_key SLUG --scope admin`)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("tenants", "0006_move_cache_settings_to_cache")]

    operations = [
        migrations.AddField(
            model_name="apikey",
            name="scope",
            field=models.CharField(choices=[("inference", "Inference"), ("admin", "Admin")], default="inference",
                                   max_length=20),
        ),
    ]
