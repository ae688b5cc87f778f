"""API key scopes: a key calls the gateway (`inference`, the default); only a key issued
with the `admin` scope may use the management API. Logged-in users are unaffected."""

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from apps.tenants import services
from apps.tenants.models import ApiKey, Tenant
from tests import factories


def key_client(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def as_user(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


# What the issue's key did to its own tenant, 5 of 5: every one must now be refused.
ADMIN_CALLS = [
    ("post", "/api/keys/", {"name": "minted"}),
    ("get", "/api/keys/", None),
    ("patch", "/api/settings/", {"log_prompts": True}),
    ("patch", "/api/cache/settings/", {"threshold": 0.95}),
    ("delete", "/api/cache/", None),
    ("get", "/api/cache/", None),
]


def test_a_key_is_issued_for_inference_unless_asked_otherwise(party):
    key, _ = factories.make_key(party.tenant)
    assert key.scope == ApiKey.Scope.INFERENCE
    admin, _ = services.api_key_issue(tenant=party.tenant, name="ops", scope=ApiKey.Scope.ADMIN)
    assert admin.scope == ApiKey.Scope.ADMIN


@pytest.mark.parametrize("method, path, body", ADMIN_CALLS)
def test_an_inference_key_is_refused_by_the_management_api(party, method, path, body):
    key, raw = factories.make_key(party.tenant)
    response = getattr(key_client(raw), method)(path, body, format="json")
    assert response.status_code == 403
    assert response["content-type"] == "application/json"
    assert "admin" in response.json()["detail"]
    party.tenant.refresh_from_db()
    assert party.tenant.log_prompts is False
    assert [k.name for k in ApiKey.objects.for_tenant(party.tenant)] == [key.name]


def test_an_inference_key_cannot_revoke_a_key(party):
    target, _ = factories.make_key(party.tenant, "target")
    _, raw = factories.make_key(party.tenant, "caller")
    assert key_client(raw).delete(f"/api/keys/{target.pk}/").status_code == 403
    assert ApiKey.objects.for_tenant(party.tenant).get(pk=target.pk).revoked_at is None


def test_an_admin_key_manages_its_tenant(party):
    _, raw = services.api_key_issue(tenant=party.tenant, name="ops", scope=ApiKey.Scope.ADMIN)
    api = key_client(raw)
    created = api.post("/api/keys/", {"name": "ci"}, format="json")
    assert created.status_code == 201 and created.json()["scope"] == "inference"
    elevated = api.post("/api/keys/", {"name": "ops-2", "scope": "admin"}, format="json")
    assert elevated.status_code == 201 and elevated.json()["scope"] == "admin"
    assert api.patch("/api/settings/", {"log_prompts": True}, format="json").status_code == 200


@pytest.mark.parametrize("method, path, body", ADMIN_CALLS)
def test_an_admin_key_whose_tenant_was_deleted_is_refused_as_an_unknown_key(party, settings, method, path, body):
    settings.AKA_KEY_CACHE_TTL = 60   # the key stays cached however slow the machine: the window under test
    _, raw = services.api_key_issue(tenant=party.tenant, name="ops", scope=ApiKey.Scope.ADMIN)
    api = key_client(raw)
    assert api.get("/api/keys/").status_code == 200   # the key is now in this process's key cache
    Tenant.objects.filter(pk=party.tenant.pk).delete()  # staff delete the tenant (and its keys) within that cache's TTL
    response = getattr(api, method)(path, body, format="json")
    assert (response.status_code, response["www-authenticate"]) == (401, "Bearer")
    assert response.json() == {"detail": f"Incorrect API key provided: {raw[:8]}****."}


def test_scope_is_shown_and_validated_by_the_api(party):
    api = as_user(party.alice)
    created = api.post("/api/keys/", {"name": "ci"}, format="json").json()
    assert created["scope"] == "inference"
    assert [k["scope"] for k in api.get("/api/keys/").json()["data"]] == ["inference"]
    refused = api.post("/api/keys/", {"name": "x", "scope": "root"}, format="json")
    assert refused.status_code == 400 and "scope" in refused.json()


def test_session_users_are_unaffected_by_scopes(party):
    assert as_user(party.alice).patch("/api/settings/", {"log_prompts": True}, format="json").status_code == 200
    assert as_user(party.bob).get("/api/keys/").status_code == 200


def test_the_keys_page_shows_each_keys_scope_and_issues_admin_keys(client, party):
    client.force_login(party.alice)
    client.post("/keys/new/", {"name": "ops", "scope": "admin"})
    client.post("/keys/new/", {"name": "app"})
    scopes = {k.name: k.scope for k in ApiKey.objects.for_tenant(party.tenant)}
    assert scopes == {"ops": "admin", "app": "inference"}
    page = client.get("/keys/").content.decode()
    assert "<td>admin</td>" in page and "<td>inference</td>" in page


def test_issue_key_command_takes_a_scope(party, capsys):
    call_command("issue_key", party.tenant.slug, "--name", "ops", "--scope", "admin")
    assert ApiKey.objects.for_tenant(party.tenant).get(name="ops").scope == "admin"
