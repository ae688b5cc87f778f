from django.core.management.base import BaseCommand

from ..settings_change import change_settings


class Command(BaseCommand):
    help = "Set a tenant's semantic cache similarity threshold (0.80-0.999; higher is stricter)."

    def add_arguments(self, parser):
        parser.add_argument("tenant", help="tenant slug")
        parser.add_argument("threshold", type=float)

    def handle(self, *args, **opts):
        tenant, changed = change_settings(opts["tenant"], {"threshold": opts["threshold"]})
        self.stdout.write(f"{tenant.slug} cache threshold {changed.threshold}")
