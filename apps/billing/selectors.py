"""Reads of the ledger for the gateway's feedback endpoint and the dashboard."""

import time
from dataclasses import dataclass

from django.http import Http404

from apps.core.paging import Cursor, first_page

from .invoices import lines, tax_cents
from .models import BillingAccount, CallRecord, Invoice, MeterDiscrepancy
from .standing import load_standing, suspended


@dataclass(frozen=True, slots=True)
class CallSummary:
    request_id: str
    cache: str
    cache_entry_id: int | None
    model_served: str
    route: str
    speculation: str
    predicted_quality: float | None


def call_of(*, tenant_id: int, request_id: str) -> CallSummary | None:
    """One of the tenant's calls by request id; None for another tenant's or an unknown one."""
    found = (CallRecord.objects.for_tenant(tenant_id).filter(request_id=request_id)
             .values_list("request_id", "cache", "cache_entry_id", "model_served", "route", "speculation",
                          "predicted_quality").first())
    return CallSummary(*found) if found else None


def invoice_list(*, tenant):
    return Invoice.objects.for_tenant(tenant).order_by("-period_start")


def access_invoice(*, tenant, invoice_id) -> Invoice:
    """The tenant's invoice with this id; 404 for another tenant's or a malformed id."""
    try:
        return Invoice.objects.for_tenant(tenant).get(pk=int(invoice_id))
    except (Invoice.DoesNotExist, ValueError, TypeError):
        raise Http404("No such invoice") from None


def invoice_amounts(*, invoice: Invoice) -> dict:
    """Calls, subtotal, tax and total as the tenant sees them: a draft's running figures
    (the meter outbox adds each row it stamps), else those fixed when it was finalized."""
    tax, total = invoice.tax_cents, invoice.total_cents
    if invoice.status == Invoice.Status.DRAFT:
        tax = tax_cents(invoice.subtotal_cents, invoice.tax_rate_bp)
        total = invoice.subtotal_cents + tax
    return {"calls": invoice.calls, "subtotal_cents": invoice.subtotal_cents, "tax_cents": tax, "total_cents": total}


def invoice_lines_page(*, invoice: Invoice, after: Cursor | None = None, size: int = 50):
    """A page of the invoice's lines, oldest first, after the cursor `after` (created_at, id)
    of the previous page's last line; returns (lines, whether more follow). No OFFSET."""
    return first_page(invoice_lines(invoice=invoice, after=after), size)


def invoice_lines(*, invoice: Invoice, after: Cursor | None = None):
    """The invoice's lines: its ledger rows, oldest first."""
    return lines(invoice, after).only("request_id", "created_at", "model_served", "cache", "price_cents")


def meter_discrepancies(*, unresolved: bool = True):
    """Days where Stripe's meter and our acknowledged windows disagree, for the staff console."""
    found = MeterDiscrepancy.objects.unscoped_across_all_tenants()  # staff console: every tenant
    if unresolved:
        found = found.filter(resolved_at__isnull=True)
    return found.select_related("tenant").order_by("-day", "tenant_id")


def billing_overview(*, tenant) -> dict:
    """The tenant's billing standing for its settings page and API."""
    account = BillingAccount.objects.for_tenant(tenant).first()
    standing = load_standing(getattr(tenant, "pk", tenant))
    return {
        "stripe_customer": bool(account and account.stripe_customer_id),
        "subscription_status": account.subscription_status if account else "",
        "unpaid_since": account.unpaid_since if account else None,
        "suspended": suspended(standing, time.time()),
        "monthly_call_cap": standing.monthly_call_cap or None,
    }
