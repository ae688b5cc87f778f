"""Invoices from the ledger: totals to the cent, one line per billable call, never changed
once made, visible to the tenant only."""

import base64
import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client

from apps.billing import invoices, outbox, webhooks
from apps.billing.invoices import Period
from apps.billing.models import CallRecord, Invoice, MeterWindow
from apps.tenants.models import Plan, Tenant
from tests import factories
from tests.billing.helpers import ledger_rows, streamed

MAY = Period(datetime(2026, 5, 1, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC))
IN_MAY = datetime(2026, 5, 14, 12, tzinfo=UTC)


def api(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_periods_are_calendar_months():
    assert Period.containing(datetime(2026, 12, 31, 23, 59, tzinfo=UTC)) == Period(
        datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    assert Period.containing(datetime(2027, 1, 5, tzinfo=UTC)).previous() == Period(
        datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize(("subtotal", "rate", "tax"), [(0, 2000, 0), (10, 2000, 2), (7, 2000, 1), (5, 1000, 1),
                                                       (4, 1000, 0), (123457, 825, 10185)])
def test_tax_rounds_half_up_in_integer_cents(subtotal, rate, tax):
    assert invoices.tax_cents(subtotal, rate) == tax


def test_invoice_matches_the_ledger_to_the_cent(db, settings, party):
    settings.AKA_BILLING_TAX_RATE_BP = 2000
    ledger_rows(party.tenant, 123, price_cents=10, at=IN_MAY)
    ledger_rows(party.tenant, 45, price_cents=7, at=IN_MAY + timedelta(days=3))   # after a plan change
    ledger_rows(party.tenant, 9, billable=False, at=IN_MAY)
    ledger_rows(party.tenant, 4, at=MAY.end + timedelta(hours=1))                  # next period
    ledger_rows(party.other_tenant, 50, at=IN_MAY)
    invoice = invoices.period_close(tenant_id=party.tenant.pk, period=MAY)
    # Computed independently from the ledger rows themselves: the billable ones made in May.
    rows = [r for r in CallRecord.objects.for_tenant(party.tenant)
            if r.billable and MAY.start <= r.created_at < MAY.end]
    subtotal = sum(r.price_cents for r in rows)
    assert subtotal == 123 * 10 + 45 * 7 == 1545
    assert (invoice.calls, invoice.subtotal_cents, invoice.tax_cents, invoice.total_cents) == (168, 1545, 309, 1854)
    assert (invoice.unit_price_cents, invoice.late_calls, invoice.status) == (None, 0, "finalized")
    assert invoice.number == f"AKA-{party.tenant.pk:06d}-202605"
    assert sorted(CallRecord.objects.for_tenant(party.tenant).filter(invoice=invoice)
                  .values_list("request_id", flat=True)) == sorted(r.request_id for r in rows)


def test_seven_digit_tenants_get_their_own_invoice_numbers(db):
    """Ids past 999,999 are not cut to 6 digits: the drafts the outbox makes carry the
    number invoices.number() gives, and two such tenants' calls are both collected."""
    factories.ensure_plans()
    starter = Plan.objects.get(name="Starter")
    big, next_big = (Tenant.objects.create(pk=pk, name=f"Tenant {pk}", slug=f"tenant-{pk}", plan=starter)
                     for pk in (1_000_000, 1_000_001))
    ledger_rows(big, 2, at=IN_MAY)
    ledger_rows(next_big, 3, at=IN_MAY)
    drafts = {i.tenant_id: (i.number, i.calls) for i in Invoice.objects.unscoped_across_all_tenants()}
    assert drafts == {1_000_000: ("AKA-1000000-202605", 2), 1_000_001: ("AKA-1000001-202605", 3)}
    assert invoices.period_close(tenant_id=big.pk, period=MAY).number == invoices.number(big.pk, MAY)


def test_csv_has_one_line_per_billable_call(db, party, monkeypatch):
    monkeypatch.setattr(invoices, "CSV_CHUNK", 7)  # 31 lines with one time: chunks split on the id
    made = ledger_rows(party.tenant, 31, at=IN_MAY, cache="exact")
    ledger_rows(party.tenant, 3, billable=False, at=IN_MAY)
    invoice = invoices.period_close(tenant_id=party.tenant.pk, period=MAY)
    response = api(party.bob).get(f"/api/invoices/{invoice.pk}/csv")
    assert response.status_code == 200 and response["content-type"] == "text/csv" and response.is_async
    lines = list(csv.reader(io.StringIO(streamed(response).decode())))
    assert lines[0] == ["request_id", "time", "model_served", "cache", "price_cents"]
    assert [line[0] for line in lines[1:]] == [r.request_id for r in sorted(made, key=lambda r: r.pk)]
    assert {(line[2], line[3], line[4]) for line in lines[1:]} == {("gpt-4o-mini", "exact", "10")}
    assert sum(int(line[4]) for line in lines[1:]) == invoice.subtotal_cents == 310


def test_a_finalized_invoice_never_changes_and_late_rows_go_on_the_next(db, party):
    ledger_rows(party.tenant, 10, at=IN_MAY)
    first = invoices.period_close(tenant_id=party.tenant.pk, period=MAY)
    # Made in May, collected only after May was closed.
    ledger_rows(party.tenant, 2, at=MAY.end - timedelta(seconds=1), collected_at=MAY.end + timedelta(seconds=3))
    assert invoices.period_close(tenant_id=party.tenant.pk, period=MAY).total_cents == first.total_cents == 100
    first.refresh_from_db()
    assert first.calls == 10
    june = invoices.period_close(tenant_id=party.tenant.pk, period=Period.containing(MAY.end))
    assert (june.calls, june.late_calls, june.subtotal_cents, june.unit_price_cents) == (2, 2, 20, 10)
    assert first.status == june.status == Invoice.Status.FINALIZED


def test_rows_collected_while_the_database_is_still_in_a_closed_period_wait_for_the_next(db, party):
    """A worker whose clock runs ahead closed May while the database's clock is still in
    May: the rows collected then go on no finalized invoice and in no window; once the
    database's clock is in June they go on June's draft and window, as late calls."""
    ledger_rows(party.tenant, 10, at=IN_MAY)
    first = invoices.period_close(tenant_id=party.tenant.pk, period=MAY)
    late = ledger_rows(party.tenant, 2, at=MAY.end - timedelta(seconds=2), collected_at=MAY.end - timedelta(seconds=1))
    first.refresh_from_db()
    assert (first.status, first.calls, first.subtotal_cents) == ("finalized", 10, 100)
    waiting = CallRecord.objects.for_tenant(party.tenant).filter(pk__in=[r.pk for r in late])
    assert list(waiting.values_list("invoice_id", "meter_window_id")) == [(None, None)] * 2
    assert sum(MeterWindow.objects.for_tenant(party.tenant).values_list("quantity", flat=True)) == 10
    assert outbox.collect(at=MAY.end + timedelta(seconds=1)) == 2
    june = invoices.period_close(tenant_id=party.tenant.pk, period=Period.containing(MAY.end))
    assert (june.calls, june.late_calls, june.subtotal_cents) == (2, 2, 20)
    assert set(waiting.values_list("invoice_id", flat=True)) == {june.pk}
    assert sum(MeterWindow.objects.for_tenant(party.tenant).values_list("quantity", flat=True)) == 12


def test_close_ended_makes_one_invoice_per_tenant_and_is_idempotent(db, party):
    ledger_rows(party.tenant, 3, at=IN_MAY)
    Tenant.objects.update(created_at=IN_MAY - timedelta(days=30))
    assert Invoice.objects.for_tenant(party.tenant).get().status == Invoice.Status.DRAFT
    assert invoices.close_ended(now=MAY.end + timedelta(days=2)) == 2
    assert invoices.close_ended(now=MAY.end + timedelta(days=2)) == 0
    assert Invoice.objects.for_tenant(party.tenant).get().calls == 3
    assert Invoice.objects.for_tenant(party.other_tenant).get().calls == 0


def test_a_tenant_whose_close_fails_does_not_stop_the_others_and_is_closed_next_run(db, party, monkeypatch,
                                                                                    caplog):
    Tenant.objects.update(created_at=IN_MAY - timedelta(days=30))
    real = invoices.period_close

    def failing_for_party(*, tenant_id, period):
        if tenant_id == party.tenant.pk:
            raise RuntimeError("database went away")
        return real(tenant_id=tenant_id, period=period)

    monkeypatch.setattr(invoices, "period_close", failing_for_party)
    assert invoices.close_ended(now=MAY.end + timedelta(days=2)) == 1
    assert f"ALERT billing: tenant {party.tenant.pk}'s invoice for 2026-05 not closed" in caplog.text
    monkeypatch.setattr(invoices, "period_close", real)
    assert invoices.close_ended(now=MAY.end + timedelta(days=2)) == 1
    assert set(Invoice.objects.unscoped_across_all_tenants().values_list("status", flat=True)) == {"finalized"}


def test_a_failed_stripe_link_leaves_the_invoice_final_and_is_retried_on_the_next_close(db, party, monkeypatch,
                                                                                         caplog):
    Tenant.objects.update(created_at=IN_MAY - timedelta(days=30))
    real, linked = webhooks.stripe_invoice_link, []

    def flaky(*, invoice):
        linked.append(invoice.tenant_id)
        if len(linked) == 1:
            raise RuntimeError("a webhook payload we cannot read")
        real(invoice=invoice)

    monkeypatch.setattr(webhooks, "stripe_invoice_link", flaky)
    assert invoices.close_ended(now=MAY.end + timedelta(days=2)) == 2
    assert "ALERT billing: invoice AKA-" in caplog.text
    def pending():
        return [(i.tenant_id, i.status) for i in Invoice.objects.unscoped_across_all_tenants()
                .filter(stripe_link_pending=True)]

    assert pending() == [(linked[0], Invoice.Status.FINALIZED)]
    assert invoices.close_ended(now=MAY.end + timedelta(days=2)) == 0
    assert linked[2:] == [linked[0]] and pending() == []


def test_invoice_api_list_detail_and_paginated_lines(db, party):
    made = ledger_rows(party.tenant, 25, at=IN_MAY)
    invoice = invoices.period_close(tenant_id=party.tenant.pk, period=MAY)
    client = api(party.bob)
    listed = client.get("/api/invoices/").json()["data"]
    assert [(i["number"], i["calls"], i["total_cents"]) for i in listed] == [(invoice.number, 25, 250)]
    assert client.get(f"/api/invoices/{invoice.pk}/").json()["subtotal_cents"] == 250
    seen, url = [], f"/api/invoices/{invoice.pk}/lines/?page_size=10"
    while url:
        page = client.get(url).json()
        assert len(page["results"]) <= 10
        seen += [line["request_id"] for line in page["results"]]
        url = page["next"]
    assert sorted(seen) == sorted(r.request_id for r in made)



@pytest.mark.parametrize("position", ["p=not-a-date", "p=9999-99-99", "o=1&p=2026-13-01", "p=2026-05-14 12:00:00"])
def test_a_tampered_lines_cursor_is_a_404(db, party, position):
    ledger_rows(party.tenant, 3, at=IN_MAY)
    invoice = invoices.period_close(tenant_id=party.tenant.pk, period=MAY)
    cursor = base64.b64encode(position.encode()).decode()
    response = api(party.bob).get(f"/api/invoices/{invoice.pk}/lines/", {"cursor": cursor})
    assert (response.status_code, response.json()) == (404, {"detail": "Invalid cursor"})

def test_a_draft_shows_its_running_totals(db, settings, party):
    settings.AKA_BILLING_TAX_RATE_BP = 1000
    ledger_rows(party.tenant, 7, at=IN_MAY)
    [draft] = api(party.bob).get("/api/invoices/").json()["data"]
    assert (draft["status"], draft["calls"], draft["subtotal_cents"], draft["tax_cents"], draft["total_cents"]) == (
        "draft", 7, 70, 7, 77)


def test_a_drafts_running_totals_add_each_collection_and_equal_its_lines_at_close(db, party):
    ledger_rows(party.tenant, 4, price_cents=10, at=IN_MAY)
    MeterWindow.objects.for_tenant(party.tenant).update(state=MeterWindow.State.SENDING, attempts=1)
    ledger_rows(party.tenant, 3, price_cents=7, at=IN_MAY)  # the plan changed; its window was being sent
    draft = Invoice.objects.for_tenant(party.tenant).get(period_start=MAY.start)
    assert (draft.calls, draft.subtotal_cents) == (4, 40)  # the 3 wait for the next window, uncounted
    outbox.collect(at=IN_MAY + timedelta(minutes=1))
    ledger_rows(party.tenant, 2, billable=False, at=IN_MAY)
    draft.refresh_from_db()
    assert (draft.status, draft.calls, draft.subtotal_cents) == ("draft", 7, 61)
    closed = invoices.period_close(tenant_id=party.tenant.pk, period=MAY)  # recounted from the lines
    assert (closed.calls, closed.subtotal_cents, closed.unit_price_cents) == (7, 61, None)


def test_outsiders_get_404(db, party):
    ledger_rows(party.tenant, 2, at=IN_MAY)
    invoice = invoices.period_close(tenant_id=party.tenant.pk, period=MAY)
    charlie = api(party.charlie)
    assert charlie.get("/api/invoices/").json()["data"] == []
    for path in (f"/api/invoices/{invoice.pk}/", f"/api/invoices/{invoice.pk}/lines/",
                 f"/api/invoices/{invoice.pk}/csv", "/api/invoices/nonsense/"):
        assert charlie.get(path).status_code == 404, path


def test_invoices_are_made_without_stripe(db, no_stripe, party):
    ledger_rows(party.tenant, 4, at=IN_MAY)
    invoice = invoices.period_close(tenant_id=party.tenant.pk, period=MAY)
    assert (invoice.total_cents, invoice.stripe_invoice_id) == (40, "")
