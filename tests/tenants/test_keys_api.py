"""The /api/keys/ management API, by session and by key, with the three-party fixture."""

import pytest
from rest_framework.test import APIClient

from apps.audit.models import AuditEvent
from apps.tenants.keyauth import forget_cached_keys
from apps.tenants.models import ApiKey
from tests import factories


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def key_client(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def test_owner_creates_lists_and_revokes_a_key(party):
    api = client_for(party.alice)
    created = api.post("/api/keys/", {"name": "ci"}, format="json")
    assert created.status_code == 201
    body = created.json()
    assert body["name"] == "ci" and body["key"].startswith("aka_") and body["revoked_at"] is None

    listed = api.get("/api/keys/").json()["data"]
    assert [k["id"] for k in listed] == [body["id"]]
    assert "key" not in listed[0] and "secret_hash" not in listed[0]

    assert api.get(f"/api/keys/{body['id']}/").json()["prefix"] == body["key"][:12]
    revoked = api.delete(f"/api/keys/{body['id']}/")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert ApiKey.objects.for_tenant(party.tenant).get(pk=body["id"]).revoked_at is not None


def test_key_authenticates_the_api_for_its_own_tenant(party):
    _, raw = factories.make_key(party.tenant, "automation", scope="admin")
    factories.make_key(party.other_tenant, "theirs")
    response = key_client(raw).get("/api/keys/")
    assert response.status_code == 200
    assert [k["name"] for k in response.json()["data"]] == ["automation"]


def test_member_may_list_but_not_create_or_revoke(party):
    key, _ = factories.make_key(party.tenant)
    api = client_for(party.bob)
    assert api.get("/api/keys/").status_code == 200
    assert api.post("/api/keys/", {"name": "x"}, format="json").status_code == 403
    assert api.delete(f"/api/keys/{key.pk}/").status_code == 403
    assert ApiKey.objects.for_tenant(party.tenant).get(pk=key.pk).revoked_at is None


@pytest.mark.parametrize("method", ["get", "delete"])
def test_outsider_gets_404_for_every_key_endpoint(party, method):
    key, raw = factories.make_key(party.tenant)
    _, outsider_raw = factories.make_key(party.other_tenant, scope="admin")
    for api in (client_for(party.charlie), key_client(outsider_raw)):
        response = getattr(api, method)(f"/api/keys/{key.pk}/")
        assert response.status_code == 404
        assert str(key.pk) not in {k["id"] for k in api.get("/api/keys/").json()["data"]}
    assert ApiKey.objects.for_tenant(party.tenant).get(pk=key.pk).revoked_at is None


def test_malformed_key_id_is_404(party):
    assert client_for(party.alice).get("/api/keys/not-a-uuid/").status_code == 404


def test_anonymous_and_bad_key_are_refused(db):
    assert APIClient().get("/api/keys/").status_code == 401
    assert key_client("aka_" + "0" * 43).get("/api/keys/").status_code == 401


def test_revoked_key_cannot_use_the_api(party):
    key, raw = factories.make_key(party.tenant, scope="admin")
    api = key_client(raw)
    assert api.get("/api/keys/").status_code == 200
    api.delete(f"/api/keys/{key.pk}/")
    forget_cached_keys()  # as every process does within AKA_KEY_CACHE_TTL
    assert api.get("/api/keys/").status_code == 401


def test_an_admin_key_issuing_and_revoking_keys_is_audited_as_the_dashboard_does(party):
    automation, raw = factories.make_key(party.tenant, "automation", scope="admin")
    api = key_client(raw)
    created = api.post("/api/keys/", {"name": "shadow", "scope": "admin"}, format="json").json()
    revoked = api.delete(f"/api/keys/{created['id']}/").json()
    events = AuditEvent.objects.for_tenant(party.tenant).filter(area="keys").order_by("id")
    assert [(e.actor, e.actor_email, e.field, e.old_value, e.new_value) for e in events] == [
        (None, f"api-key:{automation.pk}", f"{created['prefix']} created", None, "shadow (admin)"),
        (None, f"api-key:{automation.pk}", f"{created['prefix']} revoked", None,
         revoked["revoked_at"].replace("Z", "+00:00")),
    ]
    assert ApiKey.objects.for_tenant(party.tenant).get(pk=created["id"]).created_by is None
