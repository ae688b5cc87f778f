from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apps.cache.services import cache_settings_update
from apps.tenants.models import Tenant


class Command(BaseCommand):
    help = "Set a tenant's semantic cache similarity threshold (0.80-0.999; higher is stricter)."

    def add_arguments(self, parser):
        parser.add_argument("tenant", help="tenant slug")
        parser.add_argument("threshold", type=float)

    def handle(self, *args, **opts):
        try:
            tenant = Tenant.objects.get(slug=opts["tenant"])
        except Tenant.DoesNotExist:
            raise CommandError(f"no tenant with slug {opts['tenant']}") from None
        try:
            changed = cache_settings_update(tenant=tenant, changes={"threshold": opts["threshold"]})
        except ValidationError as err:
            raise CommandError("; ".join(err.messages)) from None
        self.stdout.write(f"{tenant.slug} cache threshold {changed.threshold}")
