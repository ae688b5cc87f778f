"""Login, password reset and sign-up are throttled per client, and sign-up does not tell
anyone whether an email already has an account."""

import re

from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client, override_settings

from apps.tenants.models import ApiKey, Tenant
from tests import factories

SIGNUP = {"organisation": "Dana Labs", "email": "dana@example.com", "password": "a-long-passphrase-7"}


def from_ip(ip: str) -> Client:
    return Client(REMOTE_ADDR=ip)


def test_repeated_wrong_passwords_lock_the_login_even_for_the_right_one(db, settings):
    factories.make_tenant(owner_email="erin@example.com")
    client = from_ip("198.51.100.7")
    wrong = [client.post("/accounts/login/", {"username": "erin@example.com", "password": "nope-nope-1"}).status_code
             for _ in range(settings.AXES_FAILURE_LIMIT)]
    assert wrong == [200] * (settings.AXES_FAILURE_LIMIT - 1) + [429]  # the form again, then locked
    right = client.post("/accounts/login/", {"username": "erin@example.com", "password": factories.PASSWORD})
    assert right.status_code == 429
    assert client.get("/").status_code == 302  # not logged in


def test_a_good_login_still_works_below_the_limit(db, settings):
    factories.make_tenant(owner_email="erin@example.com")
    client = from_ip("198.51.100.8")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        client.post("/accounts/login/", {"username": "erin@example.com", "password": "nope-nope-1"})
    right = client.post("/accounts/login/", {"username": "erin@example.com", "password": factories.PASSWORD})
    assert right.status_code == 302 and client.get("/").status_code == 200


def test_password_reset_emails_to_one_address_are_bounded(db, settings):
    factories.make_tenant(owner_email="fay@example.com")
    answers = set()
    for n in range(21):
        response = from_ip(f"203.0.113.{n}").post("/accounts/password_reset/", {"email": "fay@example.com"})
        answers.add((response.status_code, response.get("Location")))
    assert len(mail.outbox) == settings.AKA_THROTTLE_RESET_PER_EMAIL
    # The same answer whether or not the email was sent (or exists).
    assert answers == {(302, "/accounts/password_reset/done/")}


def test_signup_emails_to_one_address_are_bounded_like_resets(db, settings):
    factories.make_tenant(owner_email="victim@example.com")
    pages = set()
    for email in ("victim@example.com", "new-victim@example.com"):  # the notice, and the link
        for n in range(3 * settings.AKA_THROTTLE_RESET_PER_EMAIL):  # each from its own client
            response = from_ip(f"198.51.100.{n + 1}").post("/accounts/signup/", {**SIGNUP, "email": email})
            pages.add((response.status_code, "Check your email" in response.content.decode()))
        assert sum(m.to == [email] for m in mail.outbox) == settings.AKA_THROTTLE_RESET_PER_EMAIL
    # The same page whether the mail was sent or skipped, and whether the email is known.
    assert pages == {(200, True)}

def test_password_reset_requests_per_client_are_bounded(db, settings):
    client = from_ip("203.0.113.50")
    statuses = [client.post("/accounts/password_reset/", {"email": f"u{n}@example.com"}).status_code
                for n in range(settings.AKA_THROTTLE_RESET_PER_CLIENT + 1)]
    assert statuses[:-1] == [302] * settings.AKA_THROTTLE_RESET_PER_CLIENT
    assert statuses[-1] == 429


def test_signup_answers_the_same_for_a_known_email_and_tells_its_owner(db):
    factories.make_tenant(owner_email="taken@example.com")
    known = from_ip("192.0.2.1").post("/accounts/signup/", {**SIGNUP, "email": "taken@example.com"})
    new = from_ip("192.0.2.2").post("/accounts/signup/", SIGNUP)
    assert known.status_code == new.status_code == 200
    def page(response):  # without the email itself and the per-client CSRF token
        text = response.content.decode().replace("taken@example.com", "E").replace("dana@example.com", "E")
        return re.sub(r"[A-Za-z0-9]{32,}", "TOKEN", text)

    assert page(known) == page(new)
    assert "already" not in known.content.decode()
    notice, confirm = sorted(mail.outbox, key=lambda m: m.to[0] != "taken@example.com")
    assert notice.to == ["taken@example.com"] and "/accounts/signup/confirm/" not in notice.body
    assert confirm.to == ["dana@example.com"] and "/accounts/signup/confirm/" in confirm.body
    # Nothing is created for either until the link is followed.
    assert not Tenant.objects.filter(name="Dana Labs").exists()


def test_signup_confirmed_by_its_link_creates_the_tenant_once(db):
    factories.ensure_plans()
    client = from_ip("192.0.2.3")
    client.post("/accounts/signup/", SIGNUP)
    link = re.search(r"http://testserver(/accounts/signup/confirm/\S+/)", mail.outbox[0].body).group(1)
    assert client.get(link).status_code == 200  # a button: mail scanners that follow links create nothing
    assert not Tenant.objects.filter(name="Dana Labs").exists()
    done = client.post(link)
    assert done.status_code == 200 and done["Cache-Control"] == "no-store"
    raw = re.search(r"aka_[A-Za-z0-9_-]{43}", done.content.decode()).group(0)
    tenant = Tenant.objects.get(name="Dana Labs")
    assert ApiKey.objects.for_tenant(tenant).get().prefix == raw[:12]
    assert get_user_model().objects.get(email="dana@example.com").check_password(SIGNUP["password"])
    assert client.get("/").status_code == 200  # logged in
    assert from_ip("192.0.2.4").post(link).status_code == 400  # used once
    assert Tenant.objects.filter(name="Dana Labs").count() == 1


def test_one_client_cannot_create_tenants_in_a_burst(db, settings):
    factories.ensure_plans()
    client = from_ip("192.0.2.9")
    statuses = [client.post("/accounts/signup/", {**SIGNUP, "email": f"burst{n}@example.com"}).status_code
                for n in range(settings.AKA_THROTTLE_SIGNUP_PER_CLIENT + 3)]
    assert statuses.count(200) == settings.AKA_THROTTLE_SIGNUP_PER_CLIENT
    assert statuses[settings.AKA_THROTTLE_SIGNUP_PER_CLIENT:] == [429] * 3
    assert len(mail.outbox) == settings.AKA_THROTTLE_SIGNUP_PER_CLIENT


@override_settings(AKA_CLIENT_IP_HEADER="HTTP_X_FORWARDED_FOR", AKA_TRUSTED_PROXIES=1)
def test_behind_a_proxy_the_client_is_the_forwarded_address(db, settings):
    statuses = [Client(REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}").post(
        "/accounts/signup/", {**SIGNUP, "email": f"p{n}@example.com"}).status_code
        for n in range(settings.AKA_THROTTLE_SIGNUP_PER_CLIENT + 2)]
    assert statuses == [200] * len(statuses)
