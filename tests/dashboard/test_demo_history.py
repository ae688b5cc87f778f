"""`manage.py demo_history` (run by `make demo`): three tenants with a month of history
written with COPY, idempotently, and rollups that agree with it."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.db.models import Sum

from apps.billing.models import CallRecord
from apps.dashboard.models import CallRollup
from apps.tenants.models import Tenant
from tests import factories

pytestmark = pytest.mark.django_db


def test_demo_history_is_written_once_and_rolled_up():
    factories.ensure_plans()
    out = StringIO()
    call_command("demo_history", "--password", "demo-pass-123456", stdout=out, stderr=StringIO())
    assert out.getvalue().startswith("3300 calls of history written")
    call_command("demo_history", "--password", "demo-pass-123456", stdout=out, stderr=StringIO())
    assert "0 calls of history written" in out.getvalue()
    for slug, calls in (("demo", 1800), ("northwind", 1000), ("globex", 500)):
        tenant = Tenant.objects.get(slug=slug)
        rows = CallRecord.objects.for_tenant(tenant)
        assert rows.count() == calls
        assert CallRollup.objects.for_tenant(tenant).aggregate(n=Sum("calls"))["n"] == calls
        ok = rows.filter(status_code=200)
        assert ok.count() == rows.filter(billable=True).count() and 0.9 < ok.count() / calls < 1
        assert set(rows.values_list("price_cents", flat=True)) == {0, tenant.plan.price_per_call_cents}
