"""The Stripe fake behind the SDK's HTTP seam: requests checked against the SDK's own
parameter types, responses shaped like its resources, state kept, faults on demand."""

import time

import pytest
import stripe
from django.test import Client
from pydantic import ValidationError

from apps.billing import accounts, stripe_api
from apps.billing.stripe_fake import Fault, decode_form, validate
from apps.tenants.models import Plan
from tests import factories


def test_form_bodies_decode_to_nested_params():
    assert decode_form("items[0][price]=p1&items[1][price]=p2&payload[value]=3&expand[0]=x&name=a%20b") == {
        "items": [{"price": "p1"}, {"price": "p2"}], "payload": {"value": "3"}, "expand": ["x"], "name": "a b"}


def test_params_are_validated_against_the_sdk_types():
    checked = validate(stripe.params.billing.MeterEventCreateParams,
                       {"event_name": "e", "payload": {"value": "3"}, "timestamp": "17"})
    assert checked["timestamp"] == 17
    with pytest.raises(ValidationError, match="identifer"):
        validate(stripe.params.billing.MeterEventCreateParams, {"event_name": "e", "payload": {}, "identifer": "x"})
    with pytest.raises(ValidationError, match="usage_typo"):
        validate(stripe.params.PriceCreateParams, {"currency": "usd", "recurring": {"interval": "month",
                                                                                   "usage_typo": "metered"}})
    with pytest.raises(ValidationError, match="event_name"):
        validate(stripe.params.billing.MeterEventCreateParams, {"payload": {}})


def test_an_unknown_parameter_sent_through_the_sdk_is_refused(db, fake):
    with pytest.raises(stripe.InvalidRequestError, match="bogus"):
        stripe_api.client().v1.customers.create({"name": "x", "bogus": "1"})  # type: ignore[typeddict-unknown-key]


def test_the_catalog_is_made_once(db, fake):
    factories.ensure_plans()
    first, again = accounts.catalog_ensure(), accounts.catalog_ensure()
    assert first == again
    assert (len(fake.all("meters")), len(fake.all("products")), len(fake.all("prices"))) == (1, 1, 3)
    [meter] = fake.all("meters")
    assert (meter["event_name"], meter["default_aggregation"], meter["customer_mapping"]["type"]) == (
        "akarouter_call", {"formula": "sum"}, "by_id")
    starter = fake.get("prices", first.prices["Starter"])
    assert (starter["unit_amount"], starter["recurring"]["usage_type"], starter["recurring"]["meter"]) == (
        10, "metered", meter["id"])


def test_a_price_change_makes_a_new_price_and_moves_the_lookup_key(db, fake):
    factories.ensure_plans()
    old = accounts.catalog_ensure().prices["Growth"]
    Plan.objects.filter(name="Growth").update(price_per_call_cents=6)
    new = accounts.catalog_ensure().prices["Growth"]
    assert new != old and fake.get("prices", new)["unit_amount"] == 6


def test_customer_creation_is_idempotent_and_subscribes(db, fake):
    tenant, _ = factories.make_tenant("Once")
    customer = stripe_api.customer_create(tenant_id=tenant.pk, name="Once", email="o@example.com")
    assert stripe_api.customer_create(tenant_id=tenant.pk, name="Once", email="o@example.com") == customer
    assert accounts.customer_ensure(tenant_id=tenant.pk) == customer
    assert len(fake.all("customers")) == 1
    [subscription] = fake.all("subscriptions")
    assert subscription["customer"] == customer
    assert subscription["items"]["data"][0]["price"]["unit_amount"] == 10


def test_deployments_sharing_a_stripe_account_do_not_share_customers(db, fake, settings):
    """Another deployment's tenant with the same id is another customer: the idempotency
    key carries the namespace, as meter identifiers do."""
    tenant, _ = factories.make_tenant("Same id")
    settings.AKA_METER_NAMESPACE = "deploy-a"
    ours = stripe_api.customer_create(tenant_id=tenant.pk, name="A", email="a@example.com")
    settings.AKA_METER_NAMESPACE = "deploy-b"
    theirs = stripe_api.customer_create(tenant_id=tenant.pk, name="B", email="b@example.com")
    assert ours != theirs and len(fake.all("customers")) == 2


def test_meter_events_refuse_a_repeated_identifier_and_old_timestamps(db, fake):
    tenant, _ = factories.make_tenant("Events")
    customer = accounts.customer_ensure(tenant_id=tenant.pk)
    now = int(time.time())
    stripe_api.meter_event_send(identifier="w1", customer=customer, value=4, timestamp=now)
    with pytest.raises(stripe_api.AlreadyRecorded):
        stripe_api.meter_event_send(identifier="w1", customer=customer, value=4, timestamp=now)
    with pytest.raises(stripe_api.Refused, match="35"):
        stripe_api.meter_event_send(identifier="w2", customer=customer, value=1, timestamp=now - 36 * 86400)
    assert fake.usage(customer) == 4
    meter = accounts.meter_id()
    assert stripe_api.meter_usage(meter_id=meter, customer=customer, start=now - 60, end=now + 60) == 4.0
    preview = stripe_api.client().v1.invoices.create_preview({"customer": customer})
    assert preview.amount_due == 40


@pytest.mark.parametrize(("fault", "error"), [(Fault.SERVER_ERROR, stripe_api.Retryable),
                                              (Fault.TIMEOUT, stripe_api.Retryable),
                                              (Fault.RATE_LIMITED, stripe_api.Throttled)])
def test_faults_on_demand(db, fake, fault, error):
    tenant, _ = factories.make_tenant("Faulty")
    customer = accounts.customer_ensure(tenant_id=tenant.pk)
    fake.fail(fault, times=1, path="/v1/billing/meter_events")
    with pytest.raises(error):
        stripe_api.meter_event_send(identifier="f1", customer=customer, value=1, timestamp=int(time.time()))
    stripe_api.meter_event_send(identifier="f1", customer=customer, value=1, timestamp=int(time.time()))
    assert fake.usage(customer) == 1


def test_checkout_and_portal_links(db, fake, party):
    accounts.customer_ensure(tenant_id=party.tenant.pk)
    owner = Client()
    owner.force_login(party.alice)
    made = owner.post("/api/billing/checkout/", {"success_url": "https://app.test/ok"}, content_type="application/json")
    assert made.status_code == 201 and made.json()["url"].startswith("https://checkout.fake.invalid/")
    portal = owner.post("/api/billing/portal/", {}, content_type="application/json")
    assert portal.status_code == 201 and portal.json()["url"].startswith("https://billing.fake.invalid/")
    member = Client()
    member.force_login(party.bob)
    assert member.post("/api/billing/portal/", {}, content_type="application/json").status_code == 403
    outsider = Client()
    outsider.force_login(party.charlie)  # no Stripe customer yet for charlie's tenant
    assert outsider.post("/api/billing/portal/", {}, content_type="application/json").status_code == 503


def test_without_stripe_checkout_says_so(db, no_stripe, party):
    owner = Client()
    owner.force_login(party.alice)
    assert owner.post("/api/billing/checkout/", {}, content_type="application/json").status_code == 503
    assert owner.get("/api/billing/").json()["suspended"] is False
