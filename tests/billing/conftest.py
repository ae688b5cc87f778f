"""Billing fixtures: the Stripe fake (state in the test Redis database, shared with any
worker or gateway process the test starts), and Celery's broker on that database too."""

import pytest
from django.conf import settings

from akaplatform.celery import app as celery_app
from akaplatform.settings import celery_url
from apps.billing import standing, stripe_api
from apps.billing.stripe_fake import FakeStripe
from apps.core.redis import sync_client

WEBHOOK_SECRET = "whsec_test_billing"


@pytest.fixture(autouse=True)
def _broker_on_test_redis():
    """Tasks a test schedules (sign-up's customer creation) go to the test Redis database,
    never to the broker a running demo's worker reads."""
    url = celery_url(settings.REDIS_URL)
    if celery_app.conf.broker_url != url:
        celery_app.conf.broker_url = url
        celery_app.pool.force_close_all()
        celery_app._pool = None
    yield


@pytest.fixture
def fake(settings):
    """Stripe, faked: this process's StripeClient talks to it, and so does any process
    started with AKA_STRIPE_FAKE=1 against the same Redis database."""
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
