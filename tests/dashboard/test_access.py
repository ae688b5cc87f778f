"""Every dashboard URL: tenant isolation (the outsider gets 404 on every object URL of
another tenant) and permission by role (members read, owners and admins change, the
owner alone changes the plan and owners, staff alone see the console)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.billing import invoices
from apps.cache.models import DEFAULT_THRESHOLD
from apps.cache.selectors import cache_settings_for
from apps.tenants.models import ApiKey, Membership
from apps.tenants.sessions import SESSION_TENANT
from tests import factories
from tests.billing.helpers import ledger_rows
from tests.dashboard import ledger

pytestmark = pytest.mark.django_db


@pytest.fixture
def objects(party):
    key, _ = factories.make_key(party.tenant, "alpha key")
    call = ledger.calls(party.tenant, n=1, start=timezone.now() - timedelta(minutes=5), span=timedelta(0))[0]
    bob = Membership.objects.for_tenant(party.tenant).get(user=party.bob)
    last_month = invoices.Period.containing(timezone.now()).previous()
    ledger_rows(party.tenant, 2, at=last_month.start)
    invoice = invoices.period_close(tenant_id=party.tenant.pk, period=last_month)
    return {"key": key, "call": call, "bob": bob, "invoice": invoice}


def object_urls(objects) -> list[tuple[str, str]]:
    key, call, bob, invoice = objects["key"], objects["call"], objects["bob"], objects["invoice"]
    return [
        ("get", f"/calls/{call.request_id}/"),
        ("get", f"/invoices/{invoice.pk}/"),
        ("get", f"/invoices/{invoice.pk}/csv"),
        ("post", f"/keys/{key.pk}/rename/"),
        ("post", f"/keys/{key.pk}/revoke/"),
        ("post", f"/settings/members/{bob.pk}/role/"),
        ("post", f"/settings/members/{bob.pk}/remove/"),
    ]


def test_the_outsider_gets_404_on_every_object_url(client, party, objects):
    client.force_login(party.charlie)  # owner of another tenant: may manage, but not these
    for method, url in object_urls(objects):
        response = getattr(client, method)(url, {"name": "x", "role": "owner"})
        assert response.status_code == 404, url
    objects["key"].refresh_from_db()
    assert objects["key"].revoked_at is None and objects["key"].name == "alpha key"
    assert Membership.objects.for_tenant(party.tenant).get(user=party.bob).role == "member"


def test_the_outsiders_lists_show_nothing_of_the_tenant(client, party, objects):
    client.force_login(party.charlie)
    for url in ("/", "/calls/", "/keys/", "/settings/", "/invoices/"):
        body = client.get(url).content.decode()
        assert "alpha key" not in body and objects["call"].request_id not in body and "Alpha Corp" not in body
        assert objects["invoice"].number not in body
        assert "bob@example.com" not in body


def test_a_member_reads_but_changes_nothing(client, party, objects):
    client.force_login(party.bob)
    for url in ("/", "/calls/", f"/calls/{objects['call'].request_id}/", "/keys/", "/invoices/",
                f"/invoices/{objects['invoice'].pk}/", f"/invoices/{objects['invoice'].pk}/csv"):
        assert client.get(url).status_code == 200, url
    assert client.get("/settings/").status_code == 403
    for method, url in object_urls(objects):
        if method == "post":
            assert client.post(url, {"name": "x", "role": "owner"}).status_code == 403, url
    assert client.post("/settings/cache/", {"cache-threshold": "0.95"}).status_code == 403
    assert client.post("/keys/new/", {"name": "x"}).status_code == 403
    assert client.post("/settings/members/invite/", {"email": "m@example.com", "role": "member"}).status_code == 403
    assert cache_settings_for(tenant=party.tenant).threshold == DEFAULT_THRESHOLD
    assert AuditEvent.objects.for_tenant(party.tenant).count() == 0


def test_anonymous_visitors_are_sent_to_log_in(client, objects):
    for url in ("/", "/calls/", f"/calls/{objects['call'].request_id}/", "/keys/", "/settings/", "/staff/",
                "/invoices/", f"/invoices/{objects['invoice'].pk}/", f"/invoices/{objects['invoice'].pk}/csv"):
        response = client.get(url)
        assert response.status_code == 302 and "login" in response["Location"], url


def test_an_admin_changes_settings_but_not_the_plan_nor_owners(client, party, objects):
    admin = factories.add_member(party.tenant, "dora@example.com", role=Membership.Role.ADMIN)
    client.force_login(admin)
    assert client.post("/settings/cache/", {"cache-enabled": "on", "cache-threshold": "0.93",
                                            "cache-ttl_seconds": "3600"}).status_code == 302
    assert cache_settings_for(tenant=party.tenant).threshold == 0.93
    assert client.post("/settings/plan/", {"plan-plan": "1"}).status_code == 403
    alice = Membership.objects.for_tenant(party.tenant).get(user=party.alice)
    assert client.post(f"/settings/members/{alice.pk}/remove/").status_code == 403
    assert client.post(f"/settings/members/{objects['bob'].pk}/role/", {"role": "owner"}).status_code == 403
    assert client.post(f"/settings/members/{objects['bob'].pk}/role/", {"role": "admin"}).status_code == 302
    assert Membership.objects.for_tenant(party.tenant).get(user=party.bob).role == "admin"


def test_staff_pages_are_for_staff_only(client, party):
    client.force_login(party.alice)
    for url in ("/staff/", "/staff/audit/", f"/staff/tenants/{party.tenant.pk}/",
                f"/staff/tenants/{party.tenant.pk}/preview/?threshold=0.9"):
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"], url
    assert client.post(f"/staff/tenants/{party.tenant.pk}/", {"threshold": "0.85"}).status_code == 302
    assert cache_settings_for(tenant=party.tenant).threshold == DEFAULT_THRESHOLD


def test_unknown_ids_are_404_not_500(client, party):
    client.force_login(party.alice)
    assert client.get("/calls/nope/").status_code == 404
    assert client.get("/invoices/nope/").status_code == 404
    assert client.get("/invoices/999999/csv").status_code == 404
    assert client.post("/keys/not-a-uuid/revoke/").status_code == 404
    assert client.post("/keys/not-a-uuid/rename/", {"name": "x"}).status_code == 404
    assert client.post("/settings/members/999999/remove/").status_code == 404
    assert client.post("/settings/nosuch/", {}).status_code == 404
    assert ApiKey.objects.for_tenant(party.tenant).count() == 0


def test_a_person_removed_from_their_sessions_tenant_acts_for_one_they_still_belong_to(client, party):
    Membership.objects.for_tenant(party.tenant).create(tenant=party.tenant, user=party.charlie, role="admin")
    client.force_login(party.charlie)
    session = client.session
    session[SESSION_TENANT] = party.tenant.pk
    session.save()
    assert client.get("/api/settings/").json()["slug"] == party.tenant.slug
    Membership.objects.for_tenant(party.tenant).filter(user=party.charlie).delete()
    assert client.get("/api/settings/").json()["slug"] == party.other_tenant.slug
    assert client.get("/").status_code == 200
    assert SESSION_TENANT not in client.session  # the stale choice is dropped
