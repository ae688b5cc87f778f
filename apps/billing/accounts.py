"""A tenant's side of Stripe: its customer, its subscription on its plan's metered price,
plan changes, Checkout for a first payment method and the Customer Portal.

The catalog (meter, product, one price per plan) is made by `catalog_ensure`, which the
`stripe_setup` command runs and which anything needing a price runs on first use; every
step looks before it creates, so it is safe to run again.
"""

import logging

from django.db import transaction
from django.utils import timezone

from apps.tenants.models import Membership, Plan, Tenant
from apps.tenants.services import tenant_update_settings

from . import stripe_api
from .models import BillingAccount, PlanBilling, StripeCatalog

log = logging.getLogger(__name__)


class BillingUnavailable(Exception):
    """Stripe is not configured, or the tenant has no Stripe customer yet."""


def account_of(*, tenant_id: int) -> BillingAccount:
    account: BillingAccount = BillingAccount.objects.for_tenant(tenant_id).get_or_create(tenant_id=tenant_id)[0]
    return account


def catalog_ensure() -> stripe_api.Catalog:
    """Meter, product and a metered price for every plan at its current per-call price."""
    meter_id, product_id = stripe_api.meter_ensure(), stripe_api.product_ensure()
    StripeCatalog.objects.update_or_create(name="meter", defaults={"stripe_id": meter_id})
    StripeCatalog.objects.update_or_create(name="product", defaults={"stripe_id": product_id})
    prices = {}
    for plan in Plan.objects.order_by("price_per_call_cents"):
        price_id = stripe_api.price_ensure(plan_name=plan.name, cents=plan.price_per_call_cents,
                                           meter_id=meter_id, product_id=product_id)
        PlanBilling.objects.update_or_create(plan_name=plan.name, defaults={
            "stripe_price_id": price_id, "price_cents": plan.price_per_call_cents})
        prices[plan.name] = price_id
    return stripe_api.Catalog(meter_id=meter_id, product_id=product_id, prices=prices)


def meter_id() -> str:
    found = StripeCatalog.objects.filter(name="meter").values_list("stripe_id", flat=True).first()
    return found or catalog_ensure().meter_id


def _price_of(plan: Plan) -> str:
    found = PlanBilling.objects.filter(plan_name=plan.name, price_cents=plan.price_per_call_cents).first()
    if found is not None and found.stripe_price_id:
        return found.stripe_price_id
    return catalog_ensure().prices[plan.name]


def customer_ensure(*, tenant_id: int) -> str | None:
    """The tenant's Stripe customer and subscription, created if missing (a retried call
    returns the same customer: the creation carries an idempotency key). None without Stripe."""
    if not stripe_api.enabled():
        return None
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None:
        return None  # deleted since the task was scheduled
    account = account_of(tenant_id=tenant_id)
    if not account.stripe_customer_id:
        owner = (Membership.objects.for_tenant(tenant).filter(role=Membership.Role.OWNER)
                 .select_related("user").order_by("created_at").first())
        account.stripe_customer_id = stripe_api.customer_create(
            tenant_id=tenant_id, name=tenant.name, email=owner.user.email if owner else "")
        account.save(update_fields=["stripe_customer_id", "updated_at"])
    subscription_sync(tenant_id=tenant_id)
    return account.stripe_customer_id


def subscription_sync(*, tenant_id: int) -> None:
    """Puts the tenant's subscription on its plan's price: created if missing, its item
    moved to the new price after a plan change."""
    if not stripe_api.enabled():
        return
    with transaction.atomic():
        # One sync per tenant at a time, held across Stripe's answers (the customer task and
        # a plan change's task may race): the later one sees the subscription the first made.
        account = BillingAccount.objects.for_tenant(tenant_id).select_for_update().get_or_create(tenant_id=tenant_id)[0]
        if not account.stripe_customer_id:
            return  # the customer task will come back here
        price = _price_of(Tenant.objects.select_related("plan").get(pk=tenant_id).plan)
        if not account.stripe_subscription_id:
            # A create whose answer was lost (a timeout) may have made one: adopt it, never a second.
            state = (stripe_api.subscription_live(customer=account.stripe_customer_id)
                     or stripe_api.subscription_create(
                         tenant_id=tenant_id, customer=account.stripe_customer_id, price=price,
                         # When the last one's state was set (its deletion): 0 for the first.
                         generation=int(account.subscription_as_of.timestamp()) if account.subscription_as_of else 0))
            if state.price_id != price:  # adopted on the price before a plan change
                state = stripe_api.subscription_price_set(subscription_id=state.subscription_id,
                                                          item_id=state.item_id, price=price)
        elif account.stripe_price_id != price:
            state = stripe_api.subscription_price_set(subscription_id=account.stripe_subscription_id,
                                                      item_id=account.stripe_subscription_item_id, price=price)
        else:
            return
        account.stripe_subscription_id, account.stripe_subscription_item_id = state.subscription_id, state.item_id
        account.stripe_price_id, account.subscription_status = state.price_id, state.status
        # Stripe's answer is as of now: a webhook sent before it (say, of the old plan) is stale.
        # Whole seconds, as Stripe dates its events: one sent in this same second still applies.
        account.subscription_as_of = timezone.now().replace(microsecond=0)
        account.save(update_fields=["stripe_subscription_id", "stripe_subscription_item_id", "stripe_price_id",
                                    "subscription_status", "subscription_as_of", "updated_at"])


def customers_missing(*, limit: int = 50) -> list[int]:
    """Tenants with calls waiting to be metered but no Stripe customer yet (the sign-up
    task failed or has not run): the outbox creates theirs."""
    from .models import MeterWindow

    waiting = (MeterWindow.objects.unscoped_across_all_tenants()  # the outbox serves every tenant
               .filter(state=MeterWindow.State.PENDING).values_list("tenant_id", flat=True).distinct())
    have = (BillingAccount.objects.unscoped_across_all_tenants().exclude(stripe_customer_id="")
            .values_list("tenant_id", flat=True))
    return list(waiting.exclude(tenant_id__in=have)[:limit])


def plan_change(*, tenant: Tenant, plan: Plan) -> Tenant:
    """The tenant's plan, hence its per-call price from its next call (every gateway
    process sees it within AKA_KEY_CACHE_TTL); Stripe's subscription follows once committed."""
    from . import tasks

    tenant = tenant_update_settings(tenant=tenant, changes={"plan": plan})
    if stripe_api.enabled():
        transaction.on_commit(lambda: tasks.subscription_sync.delay(tenant.pk))
    return tenant


def _customer(tenant: Tenant) -> str:
    if not stripe_api.enabled():
        raise BillingUnavailable("Payments are not configured on this installation.")
    account = account_of(tenant_id=tenant.pk)
    if not account.stripe_customer_id:
        raise BillingUnavailable("Your billing account is being set up; try again in a minute.")
    return account.stripe_customer_id


def checkout_start(*, tenant: Tenant, success_url: str, cancel_url: str) -> str:
    """A Checkout page where the tenant saves its first payment method."""
    return stripe_api.checkout_url(customer=_customer(tenant), success_url=success_url, cancel_url=cancel_url)


def portal_start(*, tenant: Tenant, return_url: str) -> str:
    """A Customer Portal session: payment methods, invoices, plan."""
    return stripe_api.portal_url(customer=_customer(tenant), return_url=return_url)
