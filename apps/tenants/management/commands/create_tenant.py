from django.core.management.base import BaseCommand, CommandError

from apps.tenants import services
from apps.tenants.models import ApiKey, Plan


class Command(BaseCommand):
    help = "Create a tenant with its owner (and, with --key, a first API key, printed once)."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--owner-email", required=True)
        parser.add_argument("--password", help="owner's password (omit for an unusable one; reset by email)")
        parser.add_argument("--plan", default=services.DEFAULT_PLAN, help="plan name (Starter, Growth, Scale)")
        parser.add_argument("--slug")
        parser.add_argument("--key", action="store_true", help="also issue an API key and print it")
        parser.add_argument("--key-scope", choices=ApiKey.Scope.values, default=ApiKey.Scope.INFERENCE,
                            help="the first key's scope (admin also opens the management API)")
        parser.add_argument("--rate-limit", type=int, help="requests per minute for the tenant and each key (0: none)")

    def handle(self, *args, **opts):
        if not Plan.objects.filter(name=opts["plan"]).exists():
            raise CommandError(f"no plan named {opts['plan']}")
        tenant, user = services.tenant_create(
            name=opts["name"], owner_email=opts["owner_email"], owner_password=opts["password"],
            plan_name=opts["plan"], slug=opts["slug"],
        )
        if opts["rate_limit"] is not None:
            services.tenant_set_rate_limits(tenant=tenant, rpm=opts["rate_limit"], key_rpm=opts["rate_limit"])
        self.stdout.write(f"tenant {tenant.slug} (id {tenant.pk}) owner {user.email} plan {tenant.plan.name}")
        if opts["key"]:
            _, raw = services.api_key_issue(tenant=tenant, name="Default key", created_by=user,
                                           scope=opts["key_scope"])
            self.stdout.write(raw)
