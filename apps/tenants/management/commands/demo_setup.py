from django.core.management.base import BaseCommand

from apps.tenants import keys, services
from apps.tenants.models import ApiKey, Tenant

DEMO_SLUG = "demo"
DEMO_EMAIL = "owner@demo.akarouter.local"


class Command(BaseCommand):
    help = "Idempotently create the demo tenant and its owner; print 'EMAIL PASSWORD KEY'."

    def add_arguments(self, parser):
        parser.add_argument("--password", required=True)
        parser.add_argument("--reuse-key", default="", help="a key from an earlier run, kept if still valid")

    def handle(self, *args, **opts):
        tenant = Tenant.objects.filter(slug=DEMO_SLUG).first()
        if tenant is None:
            tenant, _ = services.tenant_create(
                name="Demo Support Desk", slug=DEMO_SLUG, owner_email=DEMO_EMAIL, owner_password=opts["password"],
            )
        # The printed login must work even if an earlier run stopped before saving it.
        services.user_ensure_password(email=DEMO_EMAIL, password=opts["password"])
        reuse = opts["reuse_key"]
        valid = bool(reuse) and ApiKey.objects.for_tenant(tenant).filter(
            secret_hash=keys.secret_hash(reuse), revoked_at__isnull=True
        ).exists()
        raw = reuse if valid else services.api_key_issue(tenant=tenant, name="Demo key")[1]
        self.stdout.write(f"{DEMO_EMAIL} {opts['password']} {raw}")
