"""Every page's number of queries, pinned: it must not grow with the tenant's calls, keys
or members (each page reads rollups or one page of rows, never one query per row)."""

from datetime import date, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from apps.billing import invoices
from apps.billing.models import MeterDiscrepancy
from apps.dashboard.rollups import rollups_refresh
from apps.routing.models import Feedback
from apps.tenants.models import Membership
from tests import factories
from tests.billing.helpers import ledger_rows
from tests.dashboard import ledger

pytestmark = pytest.mark.django_db

# Session, user and membership are 3 of each page's queries (staff pages: session and user).
PAGES = {
    "/?period=30d": 7,
    "/?period=today": 7,
    "/calls/": 6,
    "/calls/?cache=miss&status=ok": 6,
    "/keys/": 4,
    "/settings/": 14,  # three of them: 30 days' semantic hits (the overview's two) and those feedback called wrong
    "/invoices/": 4,  # the invoices (a draft keeps its running totals on its own row)
}
STAFF_PAGES = {"/staff/": 4, "/staff/audit/": 3, "/staff/tenants/{tenant}/": 5}


def populate(party, scale: int):
    now = timezone.now()
    for i in range(scale):
        key, _ = factories.make_key(party.tenant, f"key {i}")
        ledger.calls(party.tenant, n=100, start=now - timedelta(days=20), span=timedelta(days=20), seed=i, api_key=key)
        factories.add_member(party.tenant, f"member{scale}-{i}@example.com", role=Membership.Role.ADMIN)
    rollups_refresh(now=now - timedelta(hours=2))
    ledger_rows(party.tenant, 60 * scale, at=now - timedelta(minutes=40))  # this month's draft
    period = invoices.Period.containing(now)
    for _ in range(scale):  # one finalized invoice per earlier month
        period = period.previous()
        ledger_rows(party.tenant, 60, at=period.start)
        invoice = invoices.period_close(tenant_id=party.tenant.pk, period=period)
    client_calls = ledger.calls(party.tenant, n=5, start=now - timedelta(minutes=30), span=timedelta(minutes=5))
    for call in client_calls[:scale]:   # verdicts: read as a subquery, never one query each
        Feedback.objects.for_tenant(party.tenant).create(tenant=party.tenant, request_id=call.request_id, score=-1.0)
    return client_calls[0], invoice


@pytest.mark.parametrize("scale", [1, 4])
def test_tenant_pages_query_counts(client, party, django_assert_num_queries, scale):
    call, invoice = populate(party, scale)
    client.force_login(party.alice)
    objects = {f"/calls/{call.request_id}/": 4, f"/invoices/{invoice.pk}/": 5,
               f"/invoices/{invoice.pk}/?after={invoice.created_at.isoformat()}_0": 5}
    for url, queries in {**PAGES, **objects}.items():
        with django_assert_num_queries(queries):
            assert client.get(url).status_code == 200, url


@pytest.mark.parametrize("scale", [1, 4])
def test_staff_pages_query_counts(client, party, django_assert_num_queries, scale):
    populate(party, scale)
    for day in range(1, scale + 1):  # reconciliation flags, shown with their tenants
        MeterDiscrepancy.objects.for_tenant(party.tenant).create(tenant=party.tenant, day=date(2026, 5, day), ours=day,
                                                                 stripes=0)
    client.force_login(get_user_model().objects.create_user("ops", "ops@x.test", "x", is_staff=True))
    for url, queries in STAFF_PAGES.items():
        with django_assert_num_queries(queries):
            assert client.get(url.format(tenant=party.tenant.pk)).status_code == 200, url
