import re

from apps.tenants.models import ApiKey
from tests import factories


def test_keys_page_lists_only_own_tenants_keys(client, party):
    factories.make_key(party.tenant, "alpha-key")
    factories.make_key(party.other_tenant, "other-key")
    client.force_login(party.alice)
    body = client.get("/keys/").content.decode()
    assert "alpha-key" in body and "other-key" not in body


def test_create_key_with_htmx_shows_it_once(client, party):
    client.force_login(party.alice)
    response = client.post("/keys/new/", {"name": "deploy"}, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    raw = re.search(r"aka_[A-Za-z0-9_-]{43}", body).group(0)
    assert "<html" not in body  # just the fragment
    key = ApiKey.objects.for_tenant(party.tenant).get(name="deploy")
    assert key.prefix == raw[:12]
    assert raw not in client.get("/keys/").content.decode()


def test_revoke_from_the_page(client, party):
    key, _ = factories.make_key(party.tenant, "old")
    client.force_login(party.alice)
    response = client.post(f"/keys/{key.pk}/revoke/", HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and "revoked" in response.content.decode()
    key.refresh_from_db()
    assert key.revoked_at is not None


def test_member_cannot_create_or_revoke(client, party):
    key, _ = factories.make_key(party.tenant)
    client.force_login(party.bob)
    assert client.post("/keys/new/", {"name": "x"}).status_code == 403
    assert client.post(f"/keys/{key.pk}/revoke/").status_code == 403
    key.refresh_from_db()
    assert key.revoked_at is None


def test_outsider_cannot_revoke_another_tenants_key(client, party):
    key, _ = factories.make_key(party.tenant)
    client.force_login(party.charlie)
    assert client.post(f"/keys/{key.pk}/revoke/").status_code == 404
    key.refresh_from_db()
    assert key.revoked_at is None
