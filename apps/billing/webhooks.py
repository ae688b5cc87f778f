"""Stripe's webhooks: each event verified, recorded once by id, and applied to our state
in the same transaction (so a failure leaves it unrecorded and Stripe's retry applies it).
Stripe neither orders deliveries nor stops redelivering for days, so an event older than
the standing or subscription state we hold is recorded but not applied over it.

- checkout.session.completed (setup mode): the saved card becomes the customer's default;
- invoice.created / invoice.finalized: Stripe's invoice id, status and hosted URL on ours;
- invoice.payment_failed: the tenant is unpaid from now (suspended after the grace period);
- invoice.paid: ours paid (once finalized), and the tenant restored;
- customer.subscription.updated: its status and price (a plan changed in the portal
  becomes the tenant's plan); customer.subscription.deleted: no subscription any more.
"""

import logging
from datetime import UTC, datetime
from typing import Any

import orjson
from django.db import transaction
from django.utils import timezone

from apps.tenants.models import Plan, Tenant
from apps.tenants.services import tenant_update_settings

from . import standing, stripe_api
from .models import BillingAccount, Invoice, PlanBilling, WebhookEvent

log = logging.getLogger(__name__)


def event_receive(*, payload: bytes, signature: str | None) -> str:
    """Verifies and applies one delivery; returns handled | duplicate | ignored. Raises
    stripe_api.BadSignature or ValueError for a delivery that is not Stripe's."""
    event = stripe_api.event_from_webhook(payload, signature)
    raw = orjson.loads(payload)
    with transaction.atomic():
        _, created = WebhookEvent.objects.get_or_create(event_id=event.id, defaults={"type": event.type, "payload": raw})
        if not created:
            return "duplicate"
        handler = HANDLERS.get(event.type)
        if handler is None:
            return "ignored"
        handler(raw["data"]["object"], datetime.fromtimestamp(raw["created"], tz=UTC))
    return "handled"


def _account(customer: str | None) -> BillingAccount | None:
    # Locked until the event is recorded: two deliveries for one customer apply one at a time.
    found = (BillingAccount.objects.unscoped_across_all_tenants()  # a webhook names a customer, not a tenant
             .select_for_update().filter(stripe_customer_id=customer or "").first())
    if found is None:
        log.warning("Stripe event for unknown customer %s ignored", customer)
    return found


def _ours(account: BillingAccount, stripe_invoice: dict[str, Any]) -> Invoice | None:
    """Our invoice for the period Stripe's invoice bills (its midpoint falls in ours). None
    for the $0 invoice Stripe makes when the subscription is created: it bills no usage (a
    subscription invoice bills the period before it, and there is none), and its zero-length
    period would fall inside our running draft."""
    start, end = stripe_invoice.get("period_start"), stripe_invoice.get("period_end")
    if not start or not end or end <= start or stripe_invoice.get("billing_reason") == "subscription_create":
        return None
    middle = datetime.fromtimestamp((start + end) / 2, tz=UTC)
    return (Invoice.objects.for_tenant(account.tenant_id)
            .filter(period_start__lte=middle, period_end__gt=middle).first())


def _link(invoice: Invoice, stripe_invoice: dict[str, Any], paid: bool = False) -> None:
    invoice.stripe_invoice_id = stripe_invoice["id"]
    invoice.hosted_invoice_url = stripe_invoice.get("hosted_invoice_url") or invoice.hosted_invoice_url
    fields = ["stripe_invoice_id", "hosted_invoice_url"]
    # Only a finalized invoice can be paid: a draft's payment is applied when it is closed
    # (stripe_invoice_link replays it), after its totals are made.
    if paid and invoice.status == Invoice.Status.FINALIZED:
        invoice.status, invoice.paid_at = Invoice.Status.PAID, timezone.now()
        fields += ["status", "paid_at"]
    invoice.save(update_fields=fields)


def invoice_events(*, customer: str):
    """The invoice events Stripe sent about `customer`, oldest first."""
    return WebhookEvent.objects.filter(customer=customer, type__startswith="invoice.").order_by("received_at")


def stripe_invoice_link(*, invoice: Invoice) -> None:
    """Links a freshly closed invoice to a Stripe invoice already announced by webhook."""
    account = BillingAccount.objects.for_tenant(invoice.tenant_id).exclude(stripe_customer_id="").first()
    if account is None:
        return
    for event in invoice_events(customer=account.stripe_customer_id):
        stripe_invoice = event.payload["data"]["object"]
        if _ours(account, stripe_invoice) == invoice:
            _link(invoice, stripe_invoice, paid=event.type == "invoice.paid")


def _newer(account: BillingAccount, field: str, created: datetime) -> bool:
    """Whether an event made at `created` may set the state that `field` dates (and if so,
    dates it): an event's object is a snapshot, so an older one would undo a later change."""
    if (held := getattr(account, field)) is not None and created < held:
        log.info("stale Stripe event (%s, before %s %s) not applied to tenant %s", created, field, held,
                 account.tenant_id)
        return False
    setattr(account, field, created)
    return True


def _invoice_announced(obj: dict[str, Any], created: datetime) -> None:
    account = _account(obj.get("customer"))
    if account is not None and (ours := _ours(account, obj)) is not None:
        _link(ours, obj)


def _invoice_paid(obj: dict[str, Any], created: datetime) -> None:
    account = _account(obj.get("customer"))
    if account is None:
        return
    if _newer(account, "standing_as_of", created):
        unpaid, account.unpaid_since = account.unpaid_since, None
        account.save(update_fields=["unpaid_since", "standing_as_of", "updated_at"])
        if unpaid is not None:
            standing.forget(account.tenant_id)
    if (ours := _ours(account, obj)) is not None:  # paid whenever the news arrives
        _link(ours, obj, paid=True)


def _payment_failed(obj: dict[str, Any], created: datetime) -> None:
    account = _account(obj.get("customer"))
    if account is None or not _newer(account, "standing_as_of", created):
        return
    unpaid = account.unpaid_since
    account.unpaid_since = unpaid or timezone.now()
    account.save(update_fields=["unpaid_since", "standing_as_of", "updated_at"])
    if unpaid is None:
        standing.forget(account.tenant_id)
    log.warning("payment failed for tenant %s (Stripe invoice %s)", account.tenant_id, obj.get("id"))


def _subscription_updated(obj: dict[str, Any], created: datetime) -> None:
    account = _account(obj.get("customer"))
    if account is None or not _newer(account, "subscription_as_of", created):
        return
    items = (obj.get("items") or {}).get("data") or []
    price = items[0]["price"]["id"] if items else account.stripe_price_id
    account.stripe_subscription_id, account.subscription_status, account.stripe_price_id = obj["id"], obj["status"], price
    if items:
        account.stripe_subscription_item_id = items[0]["id"]
    account.save(update_fields=["stripe_subscription_id", "subscription_status", "stripe_price_id",
                                "stripe_subscription_item_id", "subscription_as_of", "updated_at"])
    # A plan chosen in the portal becomes the tenant's plan (its price, from the next call).
    plan_name = PlanBilling.objects.filter(stripe_price_id=price).values_list("plan_name", flat=True).first()
    tenant = Tenant.objects.select_related("plan").get(pk=account.tenant_id)
    if plan_name and plan_name != tenant.plan.name:
        tenant_update_settings(tenant=tenant, changes={"plan": Plan.objects.get(name=plan_name)})


def _checkout_completed(obj: dict[str, Any], created: datetime) -> None:
    account = _account(obj.get("customer"))
    if account is None or obj.get("mode") != "setup" or not obj.get("setup_intent"):
        return
    stripe_api.default_payment_method_set(customer=account.stripe_customer_id, setup_intent=obj["setup_intent"])
    account.has_payment_method = True
    account.save(update_fields=["has_payment_method", "updated_at"])


def _subscription_deleted(obj: dict[str, Any], created: datetime) -> None:
    account = _account(obj.get("customer"))
    if account is None or not _newer(account, "subscription_as_of", created):
        return
    account.subscription_status = obj.get("status") or "canceled"
    account.stripe_subscription_id = account.stripe_subscription_item_id = account.stripe_price_id = ""
    account.save(update_fields=["subscription_status", "stripe_subscription_id", "stripe_subscription_item_id",
                                "stripe_price_id", "subscription_as_of", "updated_at"])


HANDLERS = {
    "checkout.session.completed": _checkout_completed,
    "invoice.created": _invoice_announced,
    "invoice.finalized": _invoice_announced,
    "invoice.paid": _invoice_paid,
    "invoice.payment_failed": _payment_failed,
    "customer.subscription.updated": _subscription_updated,
    "customer.subscription.deleted": _subscription_deleted,
}
