import sys
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.utils import timezone

from apps.billing.models import CallRecord
from apps.dashboard.history import ledger_history
from apps.dashboard.rollups import rollups_refresh
from apps.tenants import services
from apps.tenants.models import ApiKey, Tenant

# (slug, name, plan, calls over the month): three tenants of different size and plan.
TENANTS = [("demo", "Demo Support Desk", "Starter", 1800), ("northwind", "Northwind Travel", "Growth", 1000),
           ("globex", "Globex Search", "Scale", 500)]
STAFF_EMAIL = "staff@demo.akarouter.local"
DAYS = 30


class Command(BaseCommand):
    help = ("Idempotently give the demo tenants a month of ledger history (written with COPY) and a staff "
            "login, then refresh the rollups. Prints the staff login.")

    def add_arguments(self, parser):
        parser.add_argument("--password", required=True, help="for new tenant owners and the staff user")

    def handle(self, *args, password, **opts):
        now = timezone.now()
        start, end = now - timedelta(days=DAYS), now - timedelta(hours=1)
        todo = []
        for slug, name, plan, calls in TENANTS:
            tenant = Tenant.objects.filter(slug=slug).first()
            if tenant is None:
                tenant, _ = services.tenant_create(name=name, slug=slug, plan_name=plan, owner_password=password,
                                                   owner_email=f"owner@{slug}.demo.akarouter.local")
            if not CallRecord.objects.for_tenant(tenant).filter(created_at__lt=now - timedelta(days=1)).exists():
                todo.append((tenant, calls))
        total, done = sum(calls for _, calls in todo), 0

        def bar(n: int) -> None:  # on stderr, so it shows while `make demo` reads stdout
            nonlocal done
            done += n
            filled = int(30 * done / total)
            sys.stderr.write(f"\rhistory  [{'#' * filled}{'.' * (30 - filled)}] {done}/{total} calls")
            sys.stderr.flush()

        for tenant, calls in todo:
            keys = [str(k) for k in ApiKey.objects.for_tenant(tenant).values_list("pk", flat=True)[:3]]
            if not keys:
                keys = [str(services.api_key_issue(tenant=tenant, name="Production")[0].pk)]
            ledger_history(tenant_id=tenant.pk, calls=calls, start=start, end=end, api_key_ids=keys,
                           price_cents=tenant.plan.price_per_call_cents, seed=tenant.pk, progress=bar)
        if todo:
            sys.stderr.write("\n")
        User = get_user_model()
        staff = User.objects.filter(username=STAFF_EMAIL).first() or User.objects.create_user(
            STAFF_EMAIL, STAFF_EMAIL, password, is_staff=True)
        staff.set_password(password)
        staff.save(update_fields=["password"])
        rollups_refresh(since=start if todo else None)
        self.stdout.write(f"{total} calls of history written; rollups refreshed. Staff: {STAFF_EMAIL} {password}")
