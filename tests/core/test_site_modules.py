"""What a web worker holds once it has served the site: pages and the management API
load neither the Stripe SDK nor Celery nor jsonschema (issue 14: under 200 MB per worker,
bench/startup). They are imported where a task is sent, Stripe is called or an answer is
checked against a JSON schema, and not before."""

import pytest
from django.test import Client

from apps.tenants import services
from tests import factories
from tests.live import served_then_loaded


@pytest.mark.django_db(transaction=True)
def test_pages_and_the_management_api_load_neither_stripe_nor_celery_nor_jsonschema(test_database_url, settings):
    tenant, owner = factories.make_tenant()
    raw_key = services.api_key_issue(tenant=tenant, name="admin", scope="admin")[1]
    browser = Client()
    browser.force_login(owner)
    cookie = {"cookie": f"{settings.SESSION_COOKIE_NAME}={browser.cookies[settings.SESSION_COOKIE_NAME].value}"}
    key = {"authorization": f"Bearer {raw_key}"}
    asked = [("/", cookie), ("/invoices/", cookie), ("/api/keys/", key), ("/api/billing/", key)]
    # With the Stripe fake on, as in the demo: pages may ask whether Stripe is configured.
    statuses, loaded = served_then_loaded(asked, ["stripe", "celery", "kombu", "jsonschema"],
                                          {"DATABASE_URL": test_database_url, "REDIS_URL": settings.REDIS_URL,
                                           "AKA_STRIPE_FAKE": "1"})
    assert (statuses, loaded) == ([200, 200, 200, 200], [])
