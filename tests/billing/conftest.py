"""Billing fixtures: the Stripe fake (state in the test Redis database, shared with any
worker or gateway process the test starts)."""

import pytest

from apps.billing import standing, stripe_api
from apps.billing.stripe_fake import FakeStripe
from apps.core.redis import sync_client

WEBHOOK_SECRET = "whsec_test_billing"


@pytest.fixture
def fake(settings, monkeypatch):
    """Stripe, faked: this process's StripeClient talks to it, and so does any process
    started with AKA_STRIPE_FAKE=1 against the same Redis database. Sign-up's customer
    task is not sent (this process's broker is the default one, which a demo's worker may
    read); tests create customers directly, workers through the outbox."""
    monkeypatch.setattr("apps.tenants.services._billing_onboard", lambda tenant_id: None)
    settings.STRIPE_SECRET_KEY, settings.AKA_STRIPE_FAKE = "", True
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    stripe_api.reset_client()
    found = FakeStripe(sync_client(), webhook_secret=WEBHOOK_SECRET, hang_seconds=30)
    found.reset()
    standing._standings.clear()
    yield found
    found.reset()
    stripe_api.reset_client()
    standing._standings.clear()


@pytest.fixture
def no_stripe(settings):
    settings.STRIPE_SECRET_KEY, settings.AKA_STRIPE_FAKE = "", False
    stripe_api.reset_client()
    yield
    stripe_api.reset_client()
