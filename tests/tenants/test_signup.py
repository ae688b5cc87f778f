"""Sign-up, login, logout and password reset, end to end through the real views."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.http import HttpRequest
from rest_framework.test import APIClient

from apps.tenants import services, signups
from apps.tenants.models import ApiKey, Membership, Tenant
from apps.tenants.services import member_invite
from tests import factories
from tests.together import together


def signup(client, email="dana@example.com", organisation="Dana Labs", password="a-long-passphrase-7"):
    return client.post("/accounts/signup/", {"organisation": organisation, "email": email, "password": password})


def confirm(client):
    """Follows the link of the last confirmation email."""
    link = re.search(r"http://testserver(/accounts/signup/confirm/\S+/)", mail.outbox[-1].body).group(1)
    return client.post(link)


def test_signup_creates_tenant_owner_and_key_shown_once(client, db):
    factories.ensure_plans()
    assert client.get("/accounts/signup/").status_code == 200
    assert "Check your email" in signup(client).content.decode()
    response = confirm(client)
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    raw = re.search(r"aka_[A-Za-z0-9_-]{43}", response.content.decode()).group(0)

    tenant = Tenant.objects.get(name="Dana Labs")
    assert tenant.plan.name == "Starter" and tenant.status == "active"
    user = get_user_model().objects.get(email="dana@example.com")
    membership = Membership.objects.for_tenant(tenant).get()
    assert (membership.user, membership.role) == (user, "owner")
    key = ApiKey.objects.for_tenant(tenant).get()
    assert key.prefix == raw[:12]

    # Logged in, and the key is nowhere to be seen again.
    for page in ("/", "/keys/"):
        body = client.get(page).content.decode()
        assert raw not in body
    assert key.prefix in client.get("/keys/").content.decode()

    # The key works, for the gateway: it is known (not 401) but not an admin key.
    assert key.scope == "inference"
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api.get("/api/keys/").status_code == 403


def test_signup_rejects_a_weak_password(client, db):
    response = signup(client, email="new@example.com", password="short")
    assert "too short" in response.content.decode()
    assert not Tenant.objects.filter(name="Dana Labs").exists() and mail.outbox == []


def test_signup_refuses_an_email_longer_than_an_account_name(client, db):
    response = signup(client, email="a" * 40 + "@" + "b" * 60 + "." + "c" * 45 + ".com")
    assert "at most 150 characters" in response.content.decode()
    assert mail.outbox == []


def test_login_and_logout(client, db):
    _, user = factories.make_tenant(owner_email="erin@example.com")
    assert client.get("/").status_code == 302  # to the login page
    response = client.post("/accounts/login/", {"username": "erin@example.com", "password": factories.PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/").status_code == 200
    client.post("/accounts/logout/")
    assert client.get("/").status_code == 302


def test_password_reset_by_email(client, db):
    factories.make_tenant(owner_email="fay@example.com")
    response = client.post("/accounts/password_reset/", {"email": "fay@example.com"})
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    link = re.search(r"http://testserver(/accounts/reset/\S+/)", mail.outbox[0].body).group(1)
    form_page = client.get(link, follow=True)
    set_url = form_page.redirect_chain[-1][0]
    done = client.post(set_url, {"new_password1": "brand-new-secret-42", "new_password2": "brand-new-secret-42"})
    assert done.status_code == 302
    # django-axes watches every login, so it needs the request.
    assert client.login(request=HttpRequest(), username="fay@example.com", password="brand-new-secret-42")


def test_an_invited_person_whose_link_expired_gets_a_new_one_by_reset(client, db):
    tenant, _ = factories.make_tenant(owner_email="gil@example.com")
    member_invite(tenant=tenant, email="hal@example.com")   # no password until one is chosen
    assert client.post("/accounts/password_reset/", {"email": "HAL@example.com"}).status_code == 302
    assert [m.to for m in mail.outbox] == [["hal@example.com"]]
    link = re.search(r"http://testserver(/accounts/reset/\S+/)", mail.outbox[0].body).group(1)
    set_url = client.get(link, follow=True).redirect_chain[-1][0]
    assert client.post(set_url, {"new_password1": "chosen-at-last-42", "new_password2": "chosen-at-last-42"}).status_code == 302
    assert client.login(request=HttpRequest(), username="hal@example.com", password="chosen-at-last-42")


def _pending(email: str, organisation: str) -> str:
    tokens = []
    signups.signup_request(email=email, password="a-long-passphrase-7", organisation=organisation,
                           link_for=lambda token: tokens.append(token) or f"http://x/{token}/")
    return tokens[0]


def _confirmed_together(monkeypatch, *tokens) -> list[Exception]:
    """Confirms each link held just after it chose the tenant's slug until all have."""
    return together(monkeypatch, services, "_unique_slug",
                    *(lambda token=token: signups.signup_confirm(token=token) for token in tokens))


def test_two_signups_of_the_same_organisation_confirmed_together_both_succeed(transactional_db, monkeypatch):
    factories.ensure_plans()
    tokens = _pending("one@example.com", "Acme"), _pending("two@example.com", "Acme")
    assert _confirmed_together(monkeypatch, *tokens) == []
    assert sorted(Tenant.objects.filter(name="Acme").values_list("slug", flat=True)) == ["acme", "acme-2"]


def test_two_links_of_one_email_confirmed_together_make_one_account(transactional_db, monkeypatch):
    factories.ensure_plans()
    tokens = _pending("twice@example.com", "First Try"), _pending("twice@example.com", "Second Try")
    errors = _confirmed_together(monkeypatch, *tokens)
    assert [type(e) for e in errors] == [signups.LinkInvalid]  # the page that says so, not a 500
    assert get_user_model().objects.filter(username="twice@example.com").count() == 1
    assert Tenant.objects.filter(name__endswith="Try").count() == 1


def test_a_signup_link_survives_a_failed_confirmation(db, monkeypatch):
    factories.ensure_plans()
    token = _pending("fail@example.com", "Flaky Ltd")

    def database_away(**kwargs):
        raise RuntimeError("database away")

    with monkeypatch.context() as patched:
        patched.setattr(services, "signup", database_away)
        with pytest.raises(RuntimeError):
            signups.signup_confirm(token=token)
    assert signups.signup_link_valid(token=token)
    tenant, _, _ = signups.signup_confirm(token=token)
    assert tenant.name == "Flaky Ltd"
    assert not signups.signup_link_valid(token=token)  # still used once
