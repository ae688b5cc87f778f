from django.core.management.base import BaseCommand

from apps.providers.catalog import sync_from_seed


class Command(BaseCommand):
    help = "Create or update catalog models from apps/providers/data/catalog.json."

    def handle(self, *args, **opts):
        self.stdout.write(f"{sync_from_seed()} models synced")
