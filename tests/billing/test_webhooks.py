"""POST /billing/stripe/webhook: signatures checked, each event applied once, our state
following Stripe's invoices and subscriptions."""

import time
from datetime import timedelta

import orjson
import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from apps.billing import accounts, invoices, standing, stripe_api, webhooks
from apps.billing.invoices import Period
from apps.billing.models import BillingAccount, Invoice, WebhookEvent
from apps.billing.stripe_fake import Fault
from apps.tenants.models import Membership, Plan
from tests import factories
from tests.billing.helpers import ledger_rows

URL = "/billing/stripe/webhook"


@pytest.fixture
def customer(db, fake):
    tenant, _ = factories.make_tenant("Paying")
    return tenant, accounts.customer_ensure(tenant_id=tenant.pk)


def post(body: bytes, signature: str):
    return Client().post(URL, body, content_type="application/json", HTTP_STRIPE_SIGNATURE=signature)


def deliver(fake, kind: str, obj: dict, **kw):
    body, signature = fake.webhook(kind, obj, **kw)
    return post(body, signature)


def account(tenant) -> BillingAccount:
    return BillingAccount.objects.for_tenant(tenant).get()


def test_a_bad_signature_is_rejected(customer, fake):
    tenant, cus = customer
    body, _ = fake.webhook("invoice.payment_failed", fake.invoice_for(cus))
    wrong = fake.sign(body, secret="whsec_someone_else")
    assert post(body, wrong).status_code == 400
    assert post(body, "").status_code == 400
    tampered = body.replace(b'"livemode":false', b'"livemode":true')
    assert post(tampered, fake.sign(body)).status_code == 400
    stale = fake.sign(body, at=int(time.time()) - 3600)
    assert post(body, stale).status_code == 400
    assert WebhookEvent.objects.count() == 0
    assert account(tenant).unpaid_since is None


def test_a_replayed_event_is_handled_once(customer, fake):
    tenant, cus = customer
    body, signature = fake.webhook("invoice.payment_failed", fake.invoice_for(cus))
    first = post(body, signature)
    failed_at = account(tenant).unpaid_since
    BillingAccount.objects.for_tenant(tenant).update(unpaid_since=None)  # had it run twice, it would be set again
    again = post(body, signature)
    assert (first.status_code, first.content, again.status_code, again.content) == (200, b"handled", 200, b"duplicate")
    assert failed_at is not None and account(tenant).unpaid_since is None
    assert WebhookEvent.objects.filter(event_id=orjson.loads(body)["id"]).count() == 1


def test_payment_failed_then_paid(customer, fake):
    tenant, cus = customer
    deliver(fake, "invoice.payment_failed", fake.invoice_for(cus, status="open"))
    assert account(tenant).unpaid_since is not None
    deliver(fake, "invoice.payment_failed", fake.invoice_for(cus, status="open"))  # a retry keeps the first time
    first = account(tenant).unpaid_since
    assert first <= timezone.now()
    deliver(fake, "invoice.paid", fake.invoice_for(cus, status="paid"))
    assert account(tenant).unpaid_since is None


def test_a_late_payment_failure_does_not_suspend_a_tenant_that_paid(customer, fake, settings):
    """The first attempt fails, the retry succeeds; the failure's delivery comes last."""
    tenant, cus = customer
    settings.AKA_BILLING_GRACE_SECONDS = 0
    invoice, now = fake.invoice_for(cus, status="open"), int(time.time())
    failed = fake.webhook("invoice.payment_failed", invoice, created=now - 3600)
    assert deliver(fake, "invoice.paid", {**invoice, "status": "paid"}, created=now - 60).content == b"handled"
    assert post(*failed).content == b"handled"  # recorded, and older than the payment
    assert account(tenant).unpaid_since is None
    assert standing.suspended(standing.load_standing(tenant.pk), time.time() + 1) is False
    deliver(fake, "invoice.payment_failed", invoice, created=now)  # a later failure still counts
    assert standing.suspended(standing.load_standing(tenant.pk), time.time() + 1) is True


def subscription_on(fake, price: str) -> dict:
    """The customer's subscription as an event would carry it, on `price`."""
    subscription = fake.all("subscriptions")[0]
    subscription["items"]["data"][0]["price"] = fake.get("prices", price)
    return subscription


def test_a_stale_subscription_update_does_not_bring_back_an_old_plan(customer, fake):
    tenant, cus = customer
    prices = accounts.catalog_ensure().prices
    later = int(time.time()) + 60  # in the portal, after the subscription was made: Growth, then Scale
    growth = fake.webhook("customer.subscription.updated", subscription_on(fake, prices["Growth"]), created=later)
    deliver(fake, "customer.subscription.updated", subscription_on(fake, prices["Scale"]), created=later + 1)
    assert post(*growth).content == b"handled"
    tenant.refresh_from_db()
    assert (tenant.plan.name, account(tenant).stripe_price_id) == ("Scale", prices["Scale"])


def test_an_update_sent_before_our_own_plan_change_does_not_undo_it(customer, fake):
    tenant, cus = customer
    prices = accounts.catalog_ensure().prices
    starter = fake.webhook("customer.subscription.updated", subscription_on(fake, prices["Starter"]),
                           created=int(time.time()) - 60)
    accounts.plan_change(tenant=tenant, plan=Plan.objects.get(name="Scale"))
    accounts.subscription_sync(tenant_id=tenant.pk)
    assert post(*starter).content == b"handled"
    tenant.refresh_from_db()
    assert (tenant.plan.name, account(tenant).stripe_price_id) == ("Scale", prices["Scale"])


def test_stripe_invoices_are_linked_to_ours(customer, fake):
    tenant, cus = customer
    period = Period.containing(timezone.now()).previous()
    ledger_rows(tenant, 3, at=period.start + timedelta(days=2))
    stripe_invoice = {**fake.invoice_for(cus, status="open"), "period_start": int(period.start.timestamp()),
                      "period_end": int(period.end.timestamp())}
    deliver(fake, "invoice.finalized", stripe_invoice)   # before our close: remembered
    ours = invoices.period_close(tenant_id=tenant.pk, period=period)
    assert (ours.stripe_invoice_id, ours.hosted_invoice_url) == (stripe_invoice["id"], stripe_invoice["hosted_invoice_url"])
    deliver(fake, "invoice.paid", {**stripe_invoice, "status": "paid"})
    ours.refresh_from_db()
    assert ours.status == Invoice.Status.PAID and ours.paid_at is not None
    assert ours.total_cents == 30  # linking and paying never change the amounts


def test_a_closing_invoice_reads_only_its_customers_events(customer, fake):
    """Each tenant's close looked its Stripe invoice up in the payloads of every event ever
    received, a scan of the whole table per tenant; the customer is now a column of its own,
    indexed."""
    tenant, cus = customer
    other, _ = factories.make_tenant("Other")
    other_cus = accounts.customer_ensure(tenant_id=other.pk)
    for who in (cus, other_cus):
        deliver(fake, "invoice.finalized", fake.invoice_for(who, status="open"))
    deliver(fake, "customer.updated", {"id": cus, "object": "customer"})
    assert set(WebhookEvent.objects.values_list("type", "customer")) == {
        ("customer.updated", None), ("invoice.finalized", cus), ("invoice.finalized", other_cus)}
    assert [e.payload["data"]["object"]["customer"] for e in webhooks.invoice_events(customer=cus)] == [cus]
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # so few rows would be scanned either way
        plan = webhooks.invoice_events(customer=cus).explain()
    assert "webhook_customer_received" in plan


@pytest.mark.parametrize(("billing_reason", "seconds"), [
    ("subscription_create", 0),     # what Stripe sends when the subscription starts
    ("subscription_create", 60),
    ("subscription_cycle", 0),
])
def test_stripes_first_invoice_is_not_taken_for_ours(customer, fake, billing_reason, seconds):
    """The $0 invoice of a new subscription (its period a moment of our running month)
    neither links to nor pays our draft."""
    tenant, cus = customer
    ledger_rows(tenant, 3, at=timezone.now())
    now = int(time.time())
    first = {**fake.invoice_for(cus, status="paid"), "billing_reason": billing_reason, "total": 0, "amount_due": 0,
             "period_start": now - seconds, "period_end": now}
    assert deliver(fake, "invoice.paid", first).content == b"handled"
    draft = Invoice.objects.for_tenant(tenant).get()
    assert (draft.status, draft.stripe_invoice_id, draft.paid_at, draft.calls) == ("draft", "", None, 3)


def test_a_payment_announced_before_our_close_is_applied_once_finalized(customer, fake):
    tenant, cus = customer
    period = Period.containing(timezone.now()).previous()
    ledger_rows(tenant, 3, at=period.start + timedelta(days=2))
    stripe_invoice = {**fake.invoice_for(cus, status="paid"), "billing_reason": "subscription_cycle",
                      "period_start": int(period.start.timestamp()), "period_end": int(period.end.timestamp())}
    deliver(fake, "invoice.paid", stripe_invoice)
    draft = Invoice.objects.for_tenant(tenant).get()
    assert (draft.status, draft.paid_at, draft.stripe_invoice_id) == ("draft", None, stripe_invoice["id"])
    ours = invoices.period_close(tenant_id=tenant.pk, period=period)
    ours.refresh_from_db()
    assert (ours.status, ours.total_cents, ours.calls) == ("paid", 30, 3)
    assert ours.finalized_at is not None and ours.paid_at is not None


def test_a_plan_changed_in_the_portal_becomes_the_tenants_plan(customer, fake):
    tenant, cus = customer
    growth = accounts.catalog_ensure().prices["Growth"]
    subscription = fake.all("subscriptions")[0]
    subscription["items"]["data"][0]["price"] = fake.get("prices", growth)
    deliver(fake, "customer.subscription.updated", subscription)
    tenant.refresh_from_db()
    assert (tenant.plan.name, account(tenant).stripe_price_id) == ("Growth", growth)
    deliver(fake, "customer.subscription.deleted", {**subscription, "status": "canceled"})
    assert (account(tenant).subscription_status, account(tenant).stripe_subscription_id) == ("canceled", "")


def test_a_plan_change_is_made_in_stripe_too(customer, fake, monkeypatch):
    from apps.billing import tasks

    monkeypatch.setattr(tasks.subscription_sync, "delay", lambda tenant_id: tasks.subscription_sync(tenant_id))
    tenant, cus = customer
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("django.db.transaction.on_commit", lambda fn, *a, **k: fn())
        accounts.plan_change(tenant=tenant, plan=Plan.objects.get(name="Scale"))
    [subscription] = fake.all("subscriptions")
    assert subscription["items"]["data"][0]["price"]["unit_amount"] == 5
    assert account(tenant).stripe_price_id == subscription["items"]["data"][0]["price"]["id"]
    tenant.refresh_from_db()
    assert tenant.plan.price_per_call_cents == 5


def test_a_plan_chosen_on_the_dashboard_is_made_in_stripe_too(customer, fake, monkeypatch):
    """It changed our price and left Stripe's subscription on the old one: Stripe billed
    otherwise than our invoices, and its next subscription event put the old plan back."""
    from apps.billing import tasks

    monkeypatch.setattr(tasks.subscription_sync, "delay", lambda tenant_id: tasks.subscription_sync(tenant_id))
    monkeypatch.setattr("django.db.transaction.on_commit", lambda fn, *a, **k: fn())
    tenant, _ = customer
    browser = Client()
    browser.force_login(Membership.objects.for_tenant(tenant).get().user)
    assert browser.post("/settings/plan/", {"plan-plan": Plan.objects.get(name="Scale").pk}).status_code == 302
    [subscription] = fake.all("subscriptions")
    assert subscription["items"]["data"][0]["price"]["unit_amount"] == 5
    tenant.refresh_from_db()
    assert tenant.plan.price_per_call_cents == 5


def test_a_subscription_whose_creation_answer_was_lost_is_adopted_not_doubled(db, fake):
    """The create got through but its answer was lost (a timeout); the plan changed before
    the sync ran again. The tenant ends with one subscription, on the new plan's price."""
    tenant, _ = factories.make_tenant("Timed out")
    cus = stripe_api.customer_create(tenant_id=tenant.pk, name=tenant.name, email="t@example.com")
    BillingAccount.objects.for_tenant(tenant).create(tenant=tenant, stripe_customer_id=cus)
    starter = accounts.catalog_ensure().prices["Starter"]
    lost = stripe_api.subscription_create(tenant_id=tenant.pk, customer=cus, price=starter, generation=0)
    accounts.plan_change(tenant=tenant, plan=Plan.objects.get(name="Scale"))
    accounts.subscription_sync(tenant_id=tenant.pk)
    [subscription] = fake.all("subscriptions")
    assert (subscription["id"], subscription["items"]["data"][0]["price"]["unit_amount"]) == (lost.subscription_id, 5)
    assert (account(tenant).stripe_subscription_id, account(tenant).stripe_price_id) == (
        lost.subscription_id, subscription["items"]["data"][0]["price"]["id"])


def test_a_tenant_whose_subscription_was_canceled_gets_a_new_one(customer, fake):
    """Not the answer that made the canceled one, replayed for its idempotency key."""
    tenant, cus = customer
    [old] = fake.all("subscriptions")
    fake._put("subscriptions", {**old, "status": "canceled"})
    deliver(fake, "customer.subscription.deleted", {**old, "status": "canceled"}, created=int(time.time()) + 1)
    accounts.plan_change(tenant=tenant, plan=Plan.objects.get(name="Growth"))
    accounts.subscription_sync(tenant_id=tenant.pk)
    live = [x for x in fake.all("subscriptions") if x["status"] != "canceled"]
    assert len(live) == 1 and live[0]["id"] != old["id"]
    assert (account(tenant).stripe_subscription_id, account(tenant).subscription_status) == (live[0]["id"], "active")


def test_sign_up_schedules_the_stripe_customer_after_commit(transactional_db, settings, monkeypatch):
    settings.AKA_STRIPE_FAKE = True
    sent = []
    monkeypatch.setattr("akaplatform.celery.app.send_task", lambda name, args: sent.append((name, args)))
    tenant, _ = factories.make_tenant("New")
    assert sent == [("billing.customer_create", [tenant.pk])]


def checkout_completed(fake, cus: str) -> dict:
    """A setup-mode Checkout session as Stripe reports it once the customer saved a card."""
    url = stripe_api.checkout_url(customer=cus, success_url="https://app.test/ok", cancel_url="https://app.test/no")
    return fake.checkout_completed(fake.get("checkout_sessions", url.rsplit("/", 1)[1]))


def test_a_card_saved_through_checkout_becomes_the_default(customer, fake):
    tenant, cus = customer
    completed = checkout_completed(fake, cus)
    assert deliver(fake, "checkout.session.completed", completed).content == b"handled"
    method = fake.get("setup_intents", completed["setup_intent"])["payment_method"]
    assert fake.get("customers", cus)["invoice_settings"]["default_payment_method"] == method
    assert account(tenant).has_payment_method is True


def test_a_card_saved_while_stripe_is_away_is_made_the_default_on_redelivery(customer, fake):
    tenant, cus = customer
    completed = checkout_completed(fake, cus)
    body, signature = fake.webhook("checkout.session.completed", completed)
    fake.fail(Fault.TIMEOUT, times=1, path=f"/v1/setup_intents/{completed['setup_intent']}")
    first = post(body, signature)
    assert (first.status_code, WebhookEvent.objects.count(), account(tenant).has_payment_method) == (503, 0, False)
    assert post(body, signature).content == b"handled"  # Stripe's redelivery
    assert account(tenant).has_payment_method is True


def test_an_event_stripe_then_refuses_to_follow_up_is_a_400(customer, fake):
    tenant, cus = customer
    completed = checkout_completed(fake, cus)
    fake.r.delete("fakestripe:setup_intents")  # Stripe no longer knows the setup intent
    answer = deliver(fake, "checkout.session.completed", completed)
    assert (answer.status_code, WebhookEvent.objects.count(), account(tenant).has_payment_method) == (400, 0, False)


def test_unknown_event_types_are_recorded_and_ignored(customer, fake):
    assert deliver(fake, "customer.created", {"id": "cus_x", "object": "customer"}).content == b"ignored"


def test_without_a_signing_secret_nothing_is_accepted(customer, fake, settings):
    settings.STRIPE_WEBHOOK_SECRET = ""
    body, _ = fake.webhook("invoice.paid", fake.invoice_for(customer[1]))
    assert post(body, fake.sign(body, secret="")).status_code == 503
    assert WebhookEvent.objects.count() == 0


def test_get_is_not_allowed():
    assert Client().get(URL).status_code == 405
