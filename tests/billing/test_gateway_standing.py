"""Billing at the gateway's door, through the real server: a tenant suspended for an
unpaid invoice gets 402 in its client's error shape until Stripe says it is paid, and
a monthly call cap holds exactly under 50 concurrent calls."""

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.utils import timezone

from apps.billing import accounts
from apps.billing.models import BillingAccount, CallRecord
from apps.billing.standing import quota_key
from apps.core.redis import sync_client
from apps.tenants.models import Plan

CUSTOMER = "cus_live_tenant"
NO_CACHE = {"x-aka-cache": "off"}
OPENAI_BODY = {"model": "gpt-4o-mini", "max_tokens": 8, "messages": [{"role": "user", "content": "card fees?"}]}
ANTHROPIC_BODY = {"model": "claude-haiku-4-5", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}


def chat(live) -> httpx.Response:
    return httpx.post(f"{live.url}/v1/chat/completions", json=OPENAI_BODY,
                      headers={"authorization": f"Bearer {live.raw_key}", **NO_CACHE}, timeout=30)


def messages(live) -> httpx.Response:
    return httpx.post(f"{live.url}/v1/messages", json=ANTHROPIC_BODY,
                      headers={"x-api-key": live.raw_key, "anthropic-version": "2023-06-01", **NO_CACHE}, timeout=30)


def until(status: int, call, live, timeout: float = 10.0) -> httpx.Response:
    """The gateway's snapshot of the tenant is refreshed within AKA_KEY_CACHE_TTL: wait for it."""
    deadline = time.monotonic() + timeout
    while True:
        response = call(live)
        if response.status_code == status or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


def webhook(fake, kind: str, obj: dict) -> None:
    body, signature = fake.webhook(kind, obj)
    response = Client().post("/billing/stripe/webhook", body, content_type="application/json",
                             HTTP_STRIPE_SIGNATURE=signature)
    assert response.status_code == 200, response.content


@pytest.fixture
def paying(live, fake):
    BillingAccount.objects.for_tenant(live.tenant).create(tenant=live.tenant, stripe_customer_id=CUSTOMER)
    return live


def test_a_suspended_tenant_gets_402_and_is_restored_when_paid(paying, fake):
    live = paying
    invoice = {**fake.invoice_for(CUSTOMER, status="open"), "customer": CUSTOMER}
    webhook(fake, "invoice.payment_failed", invoice)
    assert chat(live).status_code == 200  # within the grace period
    # The grace period passes.
    BillingAccount.objects.for_tenant(live.tenant).update(
        unpaid_since=timezone.now() - timedelta(seconds=django_settings.AKA_BILLING_GRACE_SECONDS + 5))
    refused = until(402, chat, live)
    assert refused.status_code == 402
    assert refused.json()["error"]["type"] == "billing_not_active"
    assert refused.json()["error"]["code"] == "payment_required"
    anthropic = messages(live)
    assert anthropic.status_code == 402
    assert anthropic.json()["type"] == "error" and anthropic.json()["error"]["type"] == "billing_error"
    webhook(fake, "invoice.paid", {**invoice, "status": "paid"})
    assert until(200, chat, live).status_code == 200
    rows = live.records(expected=5)
    assert sorted((r.status_code, r.billable) for r in rows)[:2] == [(200, True), (200, True)]
    assert all(not r.billable for r in rows if r.status_code == 402)


def test_a_monthly_cap_holds_under_50_concurrent_calls(live):
    BillingAccount.objects.for_tenant(live.tenant).create(tenant=live.tenant, monthly_call_cap=10)
    sync_client().delete(quota_key(live.tenant.pk))
    with httpx.Client(base_url=live.url, limits=httpx.Limits(max_connections=50), timeout=60) as client, \
            ThreadPoolExecutor(50) as pool:
        responses = list(pool.map(lambda _: client.post(
            "/v1/chat/completions", json=OPENAI_BODY, headers={"authorization": f"Bearer {live.raw_key}", **NO_CACHE}),
            range(50)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 10 + [429] * 40
    refused = next(r for r in responses if r.status_code == 429)
    assert (refused.json()["error"]["type"], refused.json()["error"]["code"]) == ("insufficient_quota", "insufficient_quota")
    assert int(sync_client().get(quota_key(live.tenant.pk))) == 10
    live.records(expected=50)
    assert CallRecord.objects.for_tenant(live.tenant).filter(billable=True).count() == 10
    assert messages(live).json()["error"]["type"] == "rate_limit_error"  # Anthropic's shape, still over the cap


def test_a_plan_change_prices_the_next_call(live, no_stripe):
    assert chat(live).status_code == 200
    accounts.plan_change(tenant=live.tenant, plan=Plan.objects.get(name="Scale"))
    time.sleep(0.6)  # the gateway's key snapshot lives AKA_KEY_CACHE_TTL, 0.5 s under tests/conftest.py
    assert chat(live).status_code == 200
    first, second = live.records(expected=2)
    assert (first.price_cents, second.price_cents) == (10, 5)
