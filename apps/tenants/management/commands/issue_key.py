from django.core.management.base import BaseCommand, CommandError

from apps.tenants import services
from apps.tenants.models import ApiKey, Tenant


class Command(BaseCommand):
    help = "Issue an API key for a tenant and print it (the only time it is shown)."

    def add_arguments(self, parser):
        parser.add_argument("tenant", help="tenant slug")
        parser.add_argument("--name", default="CLI key")
        parser.add_argument("--scope", choices=ApiKey.Scope.values, default=ApiKey.Scope.INFERENCE,
                            help="admin also opens the management API (/api/)")

    def handle(self, *args, **opts):
        try:
            tenant = Tenant.objects.get(slug=opts["tenant"])
        except Tenant.DoesNotExist:
            raise CommandError(f"no tenant with slug {opts['tenant']}") from None
        _, raw = services.api_key_issue(tenant=tenant, name=opts["name"], scope=opts["scope"])
        self.stdout.write(raw)
