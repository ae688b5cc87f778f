"""Creates the Stripe meter, product and one metered price per plan; safe to re-run."""

from django.core.management.base import BaseCommand, CommandError

from apps.billing import accounts, stripe_api


class Command(BaseCommand):
    help = "Creates (or finds) the Stripe billing meter, product and per-plan metered prices."

    def handle(self, *args, **options):
        if not stripe_api.enabled():
            raise CommandError("Stripe is not configured: set STRIPE_SECRET_KEY (or AKA_STRIPE_FAKE=1).")
        catalog = accounts.catalog_ensure()
        self.stdout.write(f"meter {catalog.meter_id}")
        self.stdout.write(f"product {catalog.product_id}")
        for plan, price in catalog.prices.items():
            self.stdout.write(f"price {plan} {price}")
