"""Every call we make to Stripe, through the official SDK's `StripeClient`.

One client per process: Stripe itself when STRIPE_SECRET_KEY is set, the in-process fake
(apps.billing.stripe_fake) when AKA_STRIPE_FAKE is on, and none otherwise: then nothing
is pushed to Stripe and everything else (ledger, windows, invoices) carries on.

The SDK retries nothing here (max_network_retries=0): the callers own retries (the
meter outbox backs off per window; Celery retries customer creation), so a slow Stripe
never stalls a worker inside the SDK.

The SDK is imported by the functions that call it, not with this module: pages and the
management API import this module but at most ask `enabled()`, and the SDK would cost
each web worker 5 MB RSS (bench/startup).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from django.conf import settings

if TYPE_CHECKING:
    import stripe
    from stripe._base_address import BaseAddresses
    from stripe.params import PriceCreateParams, SubscriptionCreateParams
    from stripe.params.billing import MeterCreateParams, MeterEventCreateParams

METER_DISPLAY_NAME = "AkaRouter calls"
PRODUCT_ID = "prod_akarouter_calls"


class NotConfigured(RuntimeError):
    """No Stripe key and no fake: the push to Stripe is off."""


class Retryable(Exception):
    """Stripe is unreachable, failing, rate limiting or refusing our key: the same request
    may succeed later."""


class NotCarriedOut(Retryable):
    """Stripe turned the request away before doing anything with it: nothing was recorded."""


class Throttled(NotCarriedOut):
    """Stripe's rate limit."""


class KeyRefused(NotCarriedOut):
    """Stripe refused our key (401, 403): our configuration, not the request; it goes
    through once the key is fixed."""


class Refused(Exception):
    """Stripe refused the request itself (bad customer, bad URL, timestamp out of range...)."""


@contextmanager
def _stripe_errors() -> Iterator[None]:
    """The SDK's errors as ours, so every caller tells "try later" from "never" alike."""
    import stripe

    try:
        yield
    except stripe.RateLimitError as exc:
        raise Throttled(str(exc)) from exc
    except (stripe.AuthenticationError, stripe.PermissionError) as exc:
        raise KeyRefused(str(exc)) from exc
    except (stripe.APIConnectionError, stripe.APIError) as exc:
        raise Retryable(str(exc)) from exc
    except stripe.StripeError as exc:
        raise Refused(str(exc.user_message or exc)) from exc


@cache
def _client() -> stripe.StripeClient | None:
    if not enabled():
        return None
    import stripe

    base: BaseAddresses | None = {"api": settings.STRIPE_API_BASE} if settings.STRIPE_API_BASE else None
    if settings.STRIPE_SECRET_KEY:
        return stripe.StripeClient(settings.STRIPE_SECRET_KEY, max_network_retries=0, base_addresses=base,
                                   http_client=stripe.RequestsClient(timeout=settings.AKA_STRIPE_TIMEOUT))
    from apps.core.redis import sync_client

    from .stripe_fake import FakeStripe

    fake = FakeStripe(sync_client(), webhook_secret=settings.STRIPE_WEBHOOK_SECRET)
    return stripe.StripeClient("sk_test_akarouter_fake", max_network_retries=0, http_client=fake)


def enabled() -> bool:
    """Whether Stripe is configured (a secret key, or the fake), read from the settings
    without importing the SDK."""
    return bool(settings.STRIPE_SECRET_KEY or settings.AKA_STRIPE_FAKE)


def client() -> stripe.StripeClient:
    found = _client()
    if found is None:
        raise NotConfigured("Stripe is not configured: set STRIPE_SECRET_KEY (or AKA_STRIPE_FAKE=1 for the fake)")
    return found


def reset_client() -> None:
    """Forgets the process's client (after settings change: tests, the demo)."""
    _client.cache_clear()


def namespace() -> str:
    """Keeps meter identifiers and idempotency keys apart between deployments (and test
    databases) sharing one Stripe account."""
    return settings.AKA_METER_NAMESPACE or f"aka-{settings.DATABASES['default']['NAME']}"


# --- The catalog: one meter, one product, a metered price per plan ----------------------


@dataclass(frozen=True)
class Catalog:
    meter_id: str
    product_id: str
    prices: dict[str, str]   # plan name -> price id


def lookup_key(plan_name: str, cents: int) -> str:
    # The price is part of the key: a plan whose price changes gets a new Stripe price.
    return f"akarouter_{plan_name.lower()}_{cents}c_per_call"


def meter_ensure() -> str:
    """The id of the active meter for our event name, created if missing."""
    c = client()
    for meter in c.v1.billing.meters.list({"status": "active", "limit": 100}).auto_paging_iter():
        if meter.event_name == settings.AKA_STRIPE_METER_EVENT:
            return meter.id
    params: MeterCreateParams = {
        "display_name": METER_DISPLAY_NAME,
        "event_name": settings.AKA_STRIPE_METER_EVENT,
        "default_aggregation": {"formula": "sum"},
        "customer_mapping": {"type": "by_id", "event_payload_key": "stripe_customer_id"},
        "value_settings": {"event_payload_key": "value"},
    }
    return c.v1.billing.meters.create(params).id


def product_ensure() -> str:
    import stripe

    c = client()
    try:
        return c.v1.products.retrieve(PRODUCT_ID).id
    except stripe.InvalidRequestError as exc:
        if exc.code != "resource_missing":
            raise
    return c.v1.products.create({"id": PRODUCT_ID, "name": "AkaRouter gateway calls",
                                 "metadata": {"akarouter": "calls"}}).id


def price_ensure(*, plan_name: str, cents: int, meter_id: str, product_id: str) -> str:
    """The metered price (per call, monthly) for a plan at `cents`, created if missing."""
    c = client()
    key = lookup_key(plan_name, cents)
    for price in c.v1.prices.list({"lookup_keys": [key], "limit": 1}).data:
        return price.id
    params: PriceCreateParams = {
        "currency": settings.AKA_BILLING_CURRENCY,
        "unit_amount": cents,
        "product": product_id,
        "lookup_key": key,
        "transfer_lookup_key": True,
        "nickname": f"{plan_name}: {cents}c per call",
        "recurring": {"interval": "month", "usage_type": "metered", "meter": meter_id},
        "metadata": {"plan": plan_name},
    }
    return c.v1.prices.create(params).id


# --- Customers and subscriptions ---------------------------------------------------------


def customer_create(*, tenant_id: int, name: str, email: str) -> str:
    # The idempotency key makes a retried creation (a task run twice) return the same customer.
    customer = client().v1.customers.create(
        {"name": name, "email": email, "metadata": {"tenant_id": str(tenant_id)}},
        {"idempotency_key": f"{namespace()}:customer-{tenant_id}"})
    return customer.id


@dataclass(frozen=True)
class SubscriptionState:
    subscription_id: str
    item_id: str
    price_id: str
    status: str


def _state(subscription: stripe.Subscription) -> SubscriptionState:
    item = subscription["items"].data[0]
    return SubscriptionState(subscription.id, item.id, item.price.id, subscription.status)


def subscription_live(*, customer: str) -> SubscriptionState | None:
    """The customer's subscription that is not canceled (all Stripe lists by default), if any."""
    for subscription in client().v1.subscriptions.list({"customer": customer, "limit": 1}).data:
        return _state(subscription)
    return None


def subscription_create(*, tenant_id: int, customer: str, price: str, generation: int) -> SubscriptionState:
    """`generation`: which of the tenant's subscriptions this is (stable across retries of
    one creation, new once the last one ended), for the idempotency key."""
    # Anchored to the 1st at midnight UTC, so Stripe's billing periods are our calendar months.
    params: SubscriptionCreateParams = {
        "customer": customer, "items": [{"price": price}], "metadata": {"tenant_id": str(tenant_id)},
        "billing_cycle_anchor_config": {"day_of_month": 1, "hour": 0, "minute": 0, "second": 0},
        "proration_behavior": "none"}
    # The key names the tenant and the generation, not the price: a retry after a plan change
    # must not make a second subscription; and a tenant whose subscription was canceled gets a
    # new one, not the replayed answer that made the canceled one (keys live 24 h).
    return _state(client().v1.subscriptions.create(
        params, {"idempotency_key": f"{namespace()}:subscription-{tenant_id}-{generation}"}))


def subscription_price_set(*, subscription_id: str, item_id: str, price: str) -> SubscriptionState:
    """Moves the subscription's metered item to another plan's price; usage already
    reported stays on the meter, so no proration of calls is needed."""
    return _state(client().v1.subscriptions.update(
        subscription_id, {"items": [{"id": item_id, "price": price}], "proration_behavior": "none"}))


# --- Meter events ------------------------------------------------------------------------


class AlreadyRecorded(Exception):
    """Stripe already has an event with this identifier: the earlier send got through."""


class BadSignature(Exception):
    """A webhook delivery whose signature is not Stripe's."""


def meter_event_send(*, identifier: str, customer: str, value: int, timestamp: int) -> None:
    import stripe

    params: MeterEventCreateParams = {
        "event_name": settings.AKA_STRIPE_METER_EVENT,
        "identifier": identifier,
        "timestamp": timestamp,
        "payload": {"stripe_customer_id": customer, "value": str(value)},
    }
    with _stripe_errors():
        try:
            client().v1.billing.meter_events.create(params)
        except stripe.InvalidRequestError as exc:
            if exc.code == "resource_already_exists" or "already exists" in str(exc.user_message or ""):
                raise AlreadyRecorded(identifier) from exc
            raise


def meter_usage(*, meter_id: str, customer: str, start: int, end: int) -> float:
    """The meter's total for a customer over [start, end) (aligned to whole days)."""
    with _stripe_errors():
        summaries = client().v1.billing.meters.event_summaries.list(
            meter_id, {"customer": customer, "start_time": start, "end_time": end})
        return float(sum(s.aggregated_value for s in summaries.auto_paging_iter()))


# --- Checkout, the portal, webhooks ------------------------------------------------------


def checkout_url(*, customer: str, success_url: str, cancel_url: str) -> str:
    """A Checkout page (setup mode) where the tenant saves its first payment method."""
    with _stripe_errors():
        session = client().v1.checkout.sessions.create({
            "mode": "setup", "customer": customer, "currency": settings.AKA_BILLING_CURRENCY,
            "success_url": success_url, "cancel_url": cancel_url})
    return str(session.url)


def default_payment_method_set(*, customer: str, setup_intent: str) -> None:
    """Makes the card saved through Checkout the one the customer's invoices are charged to."""
    with _stripe_errors():
        method = client().v1.setup_intents.retrieve(setup_intent).payment_method
        method_id = method if isinstance(method, str) else method.id if method else None
        if method_id is None:
            raise Refused(f"setup intent {setup_intent} has no payment method")
        client().v1.customers.update(customer, {"invoice_settings": {"default_payment_method": method_id}})


def portal_url(*, customer: str, return_url: str) -> str:
    with _stripe_errors():
        return client().v1.billing_portal.sessions.create({"customer": customer, "return_url": return_url}).url


def event_from_webhook(payload: bytes, signature: str | None) -> stripe.Event:
    """The verified event; BadSignature or ValueError otherwise, and NotConfigured without
    a signing secret (an empty one would make any signature valid)."""
    import stripe

    if not settings.STRIPE_WEBHOOK_SECRET:
        raise NotConfigured("STRIPE_WEBHOOK_SECRET is not set: webhooks cannot be verified")
    try:
        event: stripe.Event = stripe.Webhook.construct_event(payload.decode(), signature or "",
                                                             settings.STRIPE_WEBHOOK_SECRET)
    except stripe.SignatureVerificationError as exc:
        raise BadSignature(str(exc)) from exc
    return event
