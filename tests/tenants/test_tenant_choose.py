"""The header's tenant picker (POST /accounts/tenant/): a person in several tenants acts for
the one they choose, and only for one they belong to."""

import pytest
from django.core import mail
from django.test import Client

from apps.tenants.models import Membership
from apps.tenants.sessions import SESSION_TENANT
from tests import factories

pytestmark = pytest.mark.django_db


def sign_in(client, user):
    response = client.post("/accounts/login/", {"username": user.username, "password": factories.PASSWORD})
    assert response.status_code == 302


def test_an_existing_account_invited_to_a_second_tenant_is_told_and_can_act_for_it(client, party):
    client.force_login(party.alice)
    assert client.post("/settings/members/invite/", {"email": "Charlie@Example.com", "role": "admin"}).status_code == 302
    [sent] = mail.outbox
    assert sent.to == ["charlie@example.com"] and sent.subject == "You were added to Alpha Corp on AkaRouter"
    assert "alice@example.com added you to Alpha Corp as admin" in sent.body
    assert "/accounts/reset/" not in sent.body  # their password stays theirs

    charlie = Client()
    sign_in(charlie, party.charlie)
    assert charlie.get("/api/settings/").json()["slug"] == party.other_tenant.slug   # the oldest, as before
    response = charlie.post("/accounts/tenant/", {"tenant": party.tenant.pk})
    assert (response.status_code, response["Location"]) == (302, "/")
    overview = charlie.get("/").content.decode()
    assert "Now acting for Alpha Corp." in overview and "<h1>Alpha Corp</h1>" in overview
    assert charlie.get("/api/settings/").json()["slug"] == party.tenant.slug
    page = charlie.get("/settings/")   # an admin's page of Alpha Corp, not of the tenant charlie owns
    assert page.status_code == 200 and "<title>Settings · Alpha Corp · AkaRouter</title>" in page.content.decode()


def test_inviting_someone_already_in_the_tenant_sends_nothing(client, party):
    client.force_login(party.alice)
    assert client.post("/settings/members/invite/", {"email": "bob@example.com", "role": "member"}).status_code == 302
    assert mail.outbox == []


def test_an_owner_given_a_second_tenant_by_the_command_can_act_for_it(client, party):
    second, _ = factories.make_tenant("Second Ltd", owner_email="charlie@example.com")
    client.force_login(party.charlie)
    assert client.post("/accounts/tenant/", {"tenant": second.pk}).status_code == 302
    assert client.get("/api/settings/").json()["slug"] == second.slug


def test_choosing_a_tenant_one_does_not_belong_to_is_404_and_changes_nothing(client, party):
    second, _ = factories.make_tenant("Second Ltd", owner_email="charlie@example.com")
    client.force_login(party.charlie)
    assert client.post("/accounts/tenant/", {"tenant": second.pk}).status_code == 302
    not_theirs = client.post("/accounts/tenant/", {"tenant": party.tenant.pk})
    nonexistent = client.post("/accounts/tenant/", {"tenant": 999999})
    assert not_theirs.status_code == nonexistent.status_code == 404
    assert not_theirs.content == nonexistent.content   # whether the tenant exists is not revealed
    for junk in ({"tenant": "x"}, {"tenant": ""}, {"tenant": 2**70}, {}):
        assert client.post("/accounts/tenant/", junk).status_code == 404, junk
    assert client.session[SESSION_TENANT] == second.pk
    assert client.get("/api/settings/").json()["slug"] == second.slug


def test_choosing_a_tenant_takes_a_signed_in_post_with_its_csrf_token(party):
    Membership.objects.for_tenant(party.tenant).create(tenant=party.tenant, user=party.charlie)
    client = Client(enforce_csrf_checks=True)
    response = client.post("/accounts/tenant/", {"tenant": party.tenant.pk})
    assert response.status_code == 403   # no CSRF cookie or token yet
    client.get("/accounts/login/")   # sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    response = client.post("/accounts/tenant/", {"tenant": party.tenant.pk, "csrfmiddlewaretoken": token})
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    client.force_login(party.charlie)
    assert client.get("/accounts/tenant/").status_code == 405
    assert client.post("/accounts/tenant/", {"tenant": party.tenant.pk}).status_code == 403
    assert SESSION_TENANT not in client.session
    token = client.cookies["csrftoken"].value
    response = client.post("/accounts/tenant/", {"tenant": party.tenant.pk, "csrfmiddlewaretoken": token})
    assert response.status_code == 302 and client.session[SESSION_TENANT] == party.tenant.pk
