"""POST /api/billing/checkout/ and /api/billing/portal/ when the input is bad: a 400
naming what was wrong, never a 500."""

import pytest
from django.test import Client

from apps.billing import accounts

CHECKOUT, PORTAL = "/api/billing/checkout/", "/api/billing/portal/"


@pytest.fixture
def owner(fake, party) -> Client:
    accounts.customer_ensure(tenant_id=party.tenant.pk)
    client = Client()
    client.force_login(party.alice)
    return client


def post(client: Client, url: str, body: dict):
    return client.post(url, body, content_type="application/json")


@pytest.mark.parametrize(("url", "field", "address", "message"), [
    (CHECKOUT, "success_url", "ftp://files.example.com/ok", "Enter an absolute http or https URL."),
    (CHECKOUT, "cancel_url", "javascript:alert(1)", "Enter an absolute http or https URL."),
    (PORTAL, "return_url", "https://app.example.com/" + "a" * 1000, "Ensure this field has no more than 1000 characters."),
])
def test_a_return_address_must_be_a_short_web_address(owner, fake, url, field, address, message):
    answer = post(owner, url, {field: address})
    assert (answer.status_code, answer.json()) == (400, {field: [message]})
    assert fake.all("checkout_sessions") == []
