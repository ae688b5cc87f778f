"""Invoices in our own data: one per tenant per calendar month (UTC), whose lines are the
tenant's billable ledger rows stamped with it.

The meter outbox stamps each billable row, as it collects it, with its tenant's draft
invoice of the current period (apps.billing.outbox), so a row is on exactly one invoice:
the one of the period it was collected in, which is also where Stripe's meter counts it.
A row made near a month's end and collected after it is on the next invoice, counted as
a late call. Closing a period waits for a running collection, then totals the draft's
lines: subtotal = the sum of each row's own price (the price in force for that call), tax
at the placeholder rate, total; integer cents throughout. The invoice is then finalized
and never changes again.
"""

import csv
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection, transaction
from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone

from apps.core.paging import Cursor, first_page, page_after
from apps.tenants.models import Tenant

from .models import CallRecord, Invoice

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime

    @classmethod
    def containing(cls, when: datetime) -> "Period":
        start = when.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
        return cls(start, end)

    def shifted(self, months: int) -> "Period":
        """The calendar month `months` after this one (before it when negative)."""
        index = self.start.year * 12 + self.start.month - 1 + months
        return Period.containing(self.start.replace(year=index // 12, month=index % 12 + 1))

    def previous(self) -> "Period":
        return self.shifted(-1)


def number(tenant_id: int, period: Period) -> str:
    return f"AKA-{tenant_id:06d}-{period.start:%Y%m}"


def tax_cents(subtotal_cents: int, rate_bp: int) -> int:
    """Tax rounded half up to the cent, in integers only."""
    return (subtotal_cents * rate_bp + 5000) // 10000


_TOTALS_SQL = f"""
SELECT count(*), coalesce(sum(price_cents), 0), count(*) FILTER (WHERE created_at < %(start)s),
       min(price_cents), max(price_cents)
FROM {CallRecord._meta.db_table} WHERE tenant_id = %(tenant)s AND invoice_id = %(invoice)s
"""


def period_close(*, tenant_id: int, period: Period) -> Invoice:
    """Finalizes the tenant's invoice for an ended `period` (made empty if the tenant had
    no calls); an invoice already finalized is returned as it is."""
    from .outbox import COLLECT_LOCK

    with transaction.atomic():
        with connection.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", [COLLECT_LOCK])  # no collection meanwhile
        invoice, _ = Invoice.objects.for_tenant(tenant_id).select_for_update().get_or_create(
            tenant_id=tenant_id, period_start=period.start, defaults={
                "number": number(tenant_id, period), "period_end": period.end,
                "tax_rate_bp": settings.AKA_BILLING_TAX_RATE_BP, "currency": settings.AKA_BILLING_CURRENCY})
        if invoice.status != Invoice.Status.DRAFT:
            return invoice
        with connection.cursor() as cur:
            cur.execute(_TOTALS_SQL, {"invoice": invoice.pk, "tenant": tenant_id, "start": period.start})
            calls, subtotal, late, low, high = cur.fetchone()
        invoice.calls, invoice.subtotal_cents, invoice.late_calls = calls, subtotal, late
        invoice.unit_price_cents = low if low == high else None  # None: the price changed mid-period
        invoice.tax_cents = tax_cents(subtotal, invoice.tax_rate_bp)
        invoice.total_cents = subtotal + invoice.tax_cents
        invoice.status, invoice.finalized_at = Invoice.Status.FINALIZED, timezone.now()
        invoice.stripe_link_pending = True
        invoice.save()
    invoice_link(invoice=invoice)
    return invoice


def invoice_link(*, invoice: Invoice) -> None:
    """Applies to a finalized invoice the Stripe invoice webhooks announced before it was
    closed (a payment among them included). A failure is an ALERT and leaves the link
    pending, for close_ended's next run: the invoice itself is final either way."""
    from .webhooks import stripe_invoice_link

    try:
        stripe_invoice_link(invoice=invoice)
    except Exception:
        log.exception("ALERT billing: invoice %s not linked to Stripe's; tried again on the next close",
                      invoice.number)
        return
    invoice.stripe_link_pending = False
    invoice.save(update_fields=["stripe_link_pending"])


def close_ended(*, now: datetime | None = None) -> int:
    """Links the invoices whose link failed before, then closes the last ended period for
    every tenant that existed in it; returns how many invoices were finalized. A tenant
    that fails is an ALERT and closed on the next run. Safe to run any number of times."""
    for pending in Invoice.objects.unscoped_across_all_tenants().filter(stripe_link_pending=True):
        invoice_link(invoice=pending)
    period = Period.containing(now or datetime.now(UTC)).previous()
    made = 0
    for tenant_id in Tenant.objects.filter(created_at__lt=period.end).values_list("pk", flat=True):
        closed = Invoice.objects.for_tenant(tenant_id).filter(period_start=period.start).exclude(
            status=Invoice.Status.DRAFT)
        if closed.exists():
            continue
        try:
            period_close(tenant_id=tenant_id, period=period)
        except Exception:
            log.exception("ALERT billing: tenant %s's invoice for %s not closed; tried again on the next run",
                          tenant_id, f"{period.start:%Y-%m}")
            continue
        made += 1
    return made


def lines(invoice: Invoice, after: Cursor | None = None) -> QuerySet:
    """The invoice's lines (its ledger rows), oldest first, past the cursor `after`."""
    return page_after(CallRecord.objects.for_tenant(invoice.tenant_id).filter(invoice=invoice), after,
                      newest_first=False)


CSV_HEADER = ["request_id", "time", "model_served", "cache", "price_cents"]
CSV_CHUNK = 5000


def _csv_chunk(invoice: Invoice, after: Cursor | None) -> tuple[list[tuple], bool]:
    return first_page(lines(invoice, after).values_list("request_id", "created_at", "model_served", "cache",
                                                        "price_cents", "id"), CSV_CHUNK)


class _Echo:
    """A file-like object whose write returns the line, so csv.writer yields lines."""

    def write(self, value):
        return value


async def csv_lines(invoice: Invoice) -> AsyncIterator[str]:
    """The invoice's CSV, a chunk of lines at a time, each chunk one keyset query. An
    asynchronous iterator, because the ASGI handler would read a synchronous one to its end
    before sending a byte; and no server-side cursor, whose WITH HOLD in autocommit would
    copy every line before the first."""
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_HEADER)
    after = None
    while True:
        chunk, more = await sync_to_async(_csv_chunk)(invoice, after)
        yield "".join(writer.writerow([request_id, at.isoformat(), model, cache, cents])
                      for request_id, at, model, cache, cents, _ in chunk)
        if not more:
            return
        after = (chunk[-1][1], chunk[-1][5])


def csv_response(invoice: Invoice) -> StreamingHttpResponse:
    """The invoice's CSV download, one line per billable call, streamed (the API and the
    dashboard both answer with it)."""
    response = StreamingHttpResponse(csv_lines(invoice), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{invoice.number}.csv"'
    return response
