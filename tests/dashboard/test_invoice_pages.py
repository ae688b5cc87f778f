"""Invoice pages: the list with each period's status and totals, an invoice with its lines
paged through htmx, its CSV (the same as the API's) and the link to Stripe's page."""

import csv
import io
import re
from datetime import UTC, datetime

import pytest

from apps.billing import invoices
from apps.billing.invoices import Period
from apps.billing.models import Invoice
from tests.billing.helpers import ledger_rows, streamed

pytestmark = pytest.mark.django_db

MAY = Period(datetime(2026, 5, 1, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC))
IN_MAY = datetime(2026, 5, 14, 12, tzinfo=UTC)
HTMX = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "lines-more"}


@pytest.fixture
def may(settings, party):
    settings.AKA_BILLING_TAX_RATE_BP = 2000
    made = ledger_rows(party.tenant, 120, price_cents=10, at=IN_MAY)
    ledger_rows(party.tenant, 5, billable=False, at=IN_MAY)
    return made, invoices.period_close(tenant_id=party.tenant.pk, period=MAY)


def test_the_list_shows_each_period_with_its_status_and_totals(client, party, may):
    ledger_rows(party.tenant, 3, price_cents=10, at=MAY.end)  # June: a draft with running totals
    client.force_login(party.bob)  # a member reads invoices
    body = client.get("/invoices/").content.decode()
    rows = re.findall(r'<tr>\s*<td><a href="/invoices/(\d+)/">([^<]+)</a>.*?</tr>', body, re.S)
    assert [name for _, name in rows] == ["June 2026", "May 2026"]
    june, may_row = (re.search(rf'<a href="/invoices/{pk}/">.*?</tr>', body, re.S).group(0) for pk, _ in rows)
    assert "draft" in june and "$0.30" in june and "$0.36" in june       # 3 calls, 20% tax
    assert "finalized" in may_row and ">120<" in may_row and "$12.00" in may_row and "$14.40" in may_row


def test_an_invoice_shows_its_periods_last_day_not_the_next_months_first(client, party, may):
    _, invoice = may
    client.force_login(party.bob)
    body = client.get(f"/invoices/{invoice.pk}/").content.decode()
    assert "<dt>Period (UTC)</dt><dd>2026-05-01 to 2026-05-31</dd>" in body


def test_an_invoice_pages_its_lines_oldest_first_through_htmx(client, party, may):
    made, invoice = may
    client.force_login(party.bob)
    page = client.get(f"/invoices/{invoice.pk}/").content.decode()
    assert invoice.number in page and "$14.40" in page and "Tax (20%)" in page and 'data-testid="stripe-invoice"' not in page
    seen = re.findall(r"/calls/(req_\w+)/", page)
    assert len(seen) == 50
    while (cursor := re.search(r'\?after=([^"]+)"', page)) is not None:
        page = client.get(f"/invoices/{invoice.pk}/?after={cursor.group(1)}", **HTMX).content.decode()
        assert "<h1>" not in page  # only the rows
        seen += re.findall(r"/calls/(req_\w+)/", page)
    assert seen == [r.request_id for r in sorted(made, key=lambda r: r.pk)]


def test_the_csv_is_the_apis_one_line_per_billable_call(client, party, may):
    made, invoice = may
    client.force_login(party.bob)
    response = client.get(f"/invoices/{invoice.pk}/csv")
    assert response.status_code == 200 and response["content-type"] == "text/csv"
    assert response["content-disposition"] == f'attachment; filename="{invoice.number}.csv"'
    body = streamed(response)
    assert body == streamed(client.get(f"/api/invoices/{invoice.pk}/csv"))
    lines = list(csv.reader(io.StringIO(body.decode())))
    assert len(lines) - 1 == invoice.calls == 120
    assert sorted(line[0] for line in lines[1:]) == sorted(r.request_id for r in made)


def test_stripes_hosted_invoice_is_linked_when_known(client, party, may):
    _, invoice = may
    Invoice.objects.for_tenant(party.tenant).filter(pk=invoice.pk).update(
        hosted_invoice_url="https://invoice.stripe.test/i/acct_1/inv_1", status=Invoice.Status.PAID)
    client.force_login(party.alice)
    page = client.get(f"/invoices/{invoice.pk}/").content.decode()
    assert 'href="https://invoice.stripe.test/i/acct_1/inv_1"' in page and ">paid<" in page


def test_no_invoices_yet_is_an_empty_state(client, party):
    client.force_login(party.alice)
    assert "No invoices yet" in client.get("/invoices/").content.decode()
