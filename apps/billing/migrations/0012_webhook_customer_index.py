from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    # Built without blocking the table's writes (a webhook's insert), so outside a transaction.
    atomic = False

    dependencies = [
        ('billing', '0011_webhook_customer'),
    ]

    operations = [
        AddIndexConcurrently(
            model_name='webhookevent',
            index=models.Index(fields=['customer', 'received_at'], name='webhook_customer_received'),
        ),
    ]
