"""Invoices in our own data: one per tenant per calendar month (UTC), whose lines are the
tenant's billable ledger rows stamped with it.

Closing a period stamps, in one statement, every billable row of the tenant not yet on an
invoice and made before the period's end (so rows from an earlier period that reached
the ledger after it closed land here, counted as late calls), and totals what it
stamped: subtotal = the sum of each row's own price (the price in force for that call),
tax at the placeholder rate, total; integer cents throughout. An invoice exists once per
tenant and period (a unique constraint) and is never recomputed.
"""

from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.db import IntegrityError, connection, transaction

from apps.tenants.models import Tenant

from .models import CallRecord, Invoice


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime

    @classmethod
    def containing(cls, when: datetime) -> "Period":
        start = when.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
        return cls(start, end)

    def previous(self) -> "Period":
        start = self.start.replace(year=self.start.year - 1, month=12) if self.start.month == 1 \
            else self.start.replace(month=self.start.month - 1)
        return Period(start, self.start)


def number(tenant_id: int, period: Period) -> str:
    return f"AKA-{tenant_id:06d}-{period.start:%Y%m}"


def tax_cents(subtotal_cents: int, rate_bp: int) -> int:
    """Tax rounded half up to the cent, in integers only."""
    return (subtotal_cents * rate_bp + 5000) // 10000


_STAMP_SQL = f"""
WITH stamped AS (
    UPDATE {CallRecord._meta.db_table} SET invoice_id = %(invoice)s
    WHERE tenant_id = %(tenant)s AND billable AND invoice_id IS NULL AND created_at < %(end)s
    RETURNING price_cents, created_at
)
SELECT count(*), coalesce(sum(price_cents), 0), count(*) FILTER (WHERE created_at < %(start)s),
       min(price_cents), max(price_cents)
FROM stamped
"""


def period_close(*, tenant_id: int, period: Period) -> Invoice:
    """The tenant's invoice for `period`: made (and finalized) now if it does not exist yet."""
    found = Invoice.objects.for_tenant(tenant_id).filter(period_start=period.start).first()
    if found is not None:
        return found
    try:
        with transaction.atomic():
            invoice = Invoice.objects.for_tenant(tenant_id).create(
                tenant_id=tenant_id, number=number(tenant_id, period), period_start=period.start,
                period_end=period.end, tax_rate_bp=settings.AKA_BILLING_TAX_RATE_BP,
                currency=settings.AKA_BILLING_CURRENCY)
            with connection.cursor() as cur:
                cur.execute(_STAMP_SQL, {"invoice": invoice.pk, "tenant": tenant_id, "start": period.start,
                                         "end": period.end})
                calls, subtotal, late, low, high = cur.fetchone()
            invoice.calls, invoice.subtotal_cents, invoice.late_calls = calls, subtotal, late
            invoice.unit_price_cents = low if low == high else None  # None: the price changed mid-period
            invoice.tax_cents = tax_cents(subtotal, invoice.tax_rate_bp)
            invoice.total_cents = subtotal + invoice.tax_cents
            invoice.save(update_fields=["calls", "subtotal_cents", "late_calls", "unit_price_cents", "tax_cents",
                                        "total_cents"])
    except IntegrityError:  # closed concurrently by another run: that one stands
        return Invoice.objects.for_tenant(tenant_id).get(period_start=period.start)
    from .webhooks import stripe_invoice_link

    stripe_invoice_link(invoice=invoice)
    return invoice


def close_ended(*, now: datetime | None = None) -> int:
    """Closes the last ended period for every tenant that existed in it; returns how many
    invoices were made. Safe to run any number of times."""
    period = Period.containing(now or datetime.now(UTC)).previous()
    made = 0
    for tenant_id in Tenant.objects.filter(created_at__lt=period.end).values_list("pk", flat=True):
        if not Invoice.objects.for_tenant(tenant_id).filter(period_start=period.start).exists():
            period_close(tenant_id=tenant_id, period=period)
            made += 1
    return made


CSV_HEADER = ["request_id", "time", "model_served", "cache", "price_cents"]


def csv_rows(invoice: Invoice):
    """The invoice's lines as CSV rows (header first), streamed from the database."""
    yield CSV_HEADER
    lines = (CallRecord.objects.for_tenant(invoice.tenant_id).filter(invoice=invoice).order_by("created_at", "id")
             .values_list("request_id", "created_at", "model_served", "cache", "price_cents"))
    for request_id, at, model, cache, cents in lines.iterator(chunk_size=5000):
        yield [request_id, at.isoformat(), model, cache, cents]
