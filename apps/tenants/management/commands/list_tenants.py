from django.core.management.base import BaseCommand
from django.db.models import Count

from apps.tenants.models import ApiKey, Tenant


class Command(BaseCommand):
    help = "List tenants with plan, status and active key count."

    def handle(self, *args, **opts):
        # ApiKey's reverse relation is hidden (related_name "+"), so count keys per tenant here.
        counts = dict(
            ApiKey.objects.unscoped_across_all_tenants()
            .filter(revoked_at__isnull=True).values_list("tenant_id").annotate(n=Count("id")).values_list("tenant_id", "n")
        )
        self.stdout.write(f"{'slug':30} {'plan':8} {'status':10} keys  name")
        for t in Tenant.objects.select_related("plan").order_by("slug"):
            self.stdout.write(f"{t.slug:30} {t.plan.name:8} {t.status:10} {counts.get(t.pk, 0):>4}  {t.name}")
