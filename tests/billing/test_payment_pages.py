"""POST /api/billing/checkout/ and /api/billing/portal/ when the input is bad or Stripe
fails: a 400 naming what was wrong, a 503 while Stripe is away, never a 500."""

import pytest
from django.test import Client

from apps.billing import accounts, stripe_api
from apps.billing.stripe_fake import Fault

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
def test_a_return_address_must_be_a_short_web_address(owner, fake, url, field, address, message, monkeypatch):
    asked = []
    for name in ("checkout_url", "portal_url"):
        monkeypatch.setattr(stripe_api, name, lambda name=name, **kwargs: asked.append(name))
    answer = post(owner, url, {field: address})
    assert (answer.status_code, answer.json()) == (400, {field: [message]})
    assert asked == []   # refused before Stripe is asked for a session


@pytest.mark.parametrize(("url", "path"), [(CHECKOUT, "/v1/checkout/sessions"),
                                           (PORTAL, "/v1/billing_portal/sessions")])
@pytest.mark.parametrize("fault", [Fault.TIMEOUT, Fault.SERVER_ERROR])
def test_while_stripe_is_away_the_answer_is_503(owner, fake, url, path, fault):
    fake.fail(fault, times=1, path=path)
    answer = post(owner, url, {})
    assert (answer.status_code, answer.json()) == (
        503, {"detail": "Payments are unavailable right now; try again in a minute."})
    assert post(owner, url, {}).status_code == 201  # Stripe is back


@pytest.mark.parametrize("url", [CHECKOUT, PORTAL])
def test_a_request_stripe_refuses_is_a_400_saying_why(owner, fake, url):
    fake.r.delete("fakestripe:customers")  # Stripe no longer knows the customer
    answer = post(owner, url, {})
    assert answer.status_code == 400
    assert answer.json()["detail"].startswith("Stripe refused the request:")
    assert "No such customer." in answer.json()["detail"]
