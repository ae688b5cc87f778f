"""A tenant's cache settings through /api/cache/settings/ (the cache app's) and /api/settings/
(composed with the tenant's own settings, same keys as before), with the three-party fixture."""

import pytest
from rest_framework.test import APIClient

from apps.audit.models import AuditEvent
from apps.cache.selectors import cache_settings_for
from apps.tenants.models import Tenant
from tests import factories

DEFAULTS = {"enabled": True, "target_wrong_hit_rate": 0.01, "threshold": 0.85, "ttl_seconds": 7 * 24 * 3600,
            "user_scope": False, "tool_calls": False, "high_temperature": False}


def as_user(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def stored(tenant) -> dict:
    current = cache_settings_for(tenant=tenant)
    return {name: getattr(current, name) for name in DEFAULTS}


def test_a_new_tenant_has_the_defaults_without_a_row(party):
    assert as_user(party.bob).get("/api/cache/settings/").json() == DEFAULTS
    assert cache_settings_for(tenant=party.tenant)._state.adding  # nothing written by reading


def test_owner_changes_cache_settings(party):
    response = as_user(party.alice).patch("/api/cache/settings/", {"threshold": 0.97, "user_scope": True},
                                          format="json")
    assert response.status_code == 200
    assert response.json() == {**DEFAULTS, "threshold": 0.97, "user_scope": True}
    assert stored(party.tenant) == {**DEFAULTS, "threshold": 0.97, "user_scope": True}


def test_an_admin_key_may_change_its_tenants_cache_settings(party):
    _, raw = factories.make_key(party.tenant, scope="admin")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.patch("/api/cache/settings/", {"enabled": False}, format="json").json()["enabled"] is False
    assert stored(party.tenant)["enabled"] is False


@pytest.mark.parametrize("path, field", [("/api/cache/settings/", "threshold"), ("/api/settings/", "cache_threshold")])
@pytest.mark.parametrize("value", [0.5, 1.0])
def test_threshold_outside_the_allowed_range_is_refused(party, path, field, value):
    response = as_user(party.alice).patch(path, {field: value}, format="json")
    assert response.status_code == 400 and list(response.json()) == [field]
    assert stored(party.tenant) == DEFAULTS


def test_member_cannot_change_cache_settings(party):
    assert as_user(party.bob).patch("/api/cache/settings/", {"enabled": False}, format="json").status_code == 403
    assert as_user(party.bob).patch("/api/settings/", {"cache_enabled": False}, format="json").status_code == 403
    assert stored(party.tenant) == DEFAULTS


def test_outsider_can_neither_read_nor_change_another_tenants_cache_settings(party):
    as_user(party.alice).patch("/api/cache/settings/", {"threshold": 0.97}, format="json")
    charlie = as_user(party.charlie)
    assert charlie.get("/api/cache/settings/").json() == DEFAULTS  # his own tenant's
    assert charlie.get("/api/settings/").json()["cache_threshold"] == 0.85
    assert charlie.patch("/api/cache/settings/", {"enabled": False}, format="json").status_code == 200
    assert charlie.patch("/api/settings/", {"cache_threshold": 0.85}, format="json").status_code == 200
    assert stored(party.tenant) == {**DEFAULTS, "threshold": 0.97}
    assert stored(party.other_tenant) == {**DEFAULTS, "enabled": False, "threshold": 0.85}


def test_settings_keep_their_wire_shape(party):
    body = as_user(party.bob).get("/api/settings/").json()
    assert body == {"name": "Alpha Corp", "slug": party.tenant.slug, "plan": "Starter", "requests_per_minute": 600,
                    "log_prompts": False, "cache_enabled": True, "cache_target_wrong_hit_rate": 0.01,
                    "cache_threshold": 0.85,
                    "cache_ttl_seconds": 7 * 24 * 3600, "cache_user_scope": False, "cache_tool_calls": False,
                    "cache_high_temperature": False,
                    "semantic_hits_30d": 0, "semantic_hits_judged_wrong_30d": 0, "observed_wrong_hit_rate": None}


def test_settings_patch_changes_each_apps_part(party):
    response = as_user(party.alice).patch("/api/settings/", {"log_prompts": True, "cache_threshold": 0.97,
                                                              "cache_user_scope": True}, format="json")
    assert response.status_code == 200
    assert (response.json()["log_prompts"], response.json()["cache_threshold"]) == (True, 0.97)
    assert Tenant.objects.get(pk=party.tenant.pk).log_prompts is True
    assert stored(party.tenant) == {**DEFAULTS, "threshold": 0.97, "user_scope": True}


def test_settings_patch_saves_nothing_when_any_part_is_invalid(party):
    response = as_user(party.alice).patch("/api/settings/", {"log_prompts": True, "name": "", "cache_ttl_seconds": 5},
                                          format="json")
    assert response.status_code == 400 and sorted(response.json()) == ["cache_ttl_seconds", "name"]
    assert Tenant.objects.get(pk=party.tenant.pk).log_prompts is False
    assert stored(party.tenant) == DEFAULTS


def test_a_tenant_only_patch_writes_no_cache_settings(party):
    as_user(party.alice).patch("/api/settings/", {"log_prompts": True}, format="json")
    assert cache_settings_for(tenant=party.tenant)._state.adding


def test_overview_shows_the_tenants_own_cache_settings(client, party):
    as_user(party.charlie).patch("/api/cache/settings/", {"enabled": False}, format="json")
    as_user(party.alice).patch("/api/cache/settings/", {"threshold": 0.97}, format="json")
    client.force_login(party.alice)
    assert "on, threshold 0.97" in client.get("/").content.decode()
    client.force_login(party.charlie)
    assert "<dd>off" in client.get("/").content.decode()


@pytest.mark.parametrize("path, field", [("/api/cache/settings/", "target_wrong_hit_rate"),
                                         ("/api/settings/", "cache_target_wrong_hit_rate")])
@pytest.mark.parametrize("value", [0.0, 0.0005, 0.5, 1, "1%", [0.01]])
def test_target_wrong_hit_rate_outside_its_range_is_refused(party, path, field, value):
    response = as_user(party.alice).patch(path, {field: value}, format="json")
    assert response.status_code == 400 and list(response.json()) == [field]
    assert stored(party.tenant) == DEFAULTS


@pytest.mark.parametrize("value", [0.005, 0.02, None])
def test_owner_sets_a_target_wrong_hit_rate_or_turns_the_second_stage_off(party, value):
    response = as_user(party.alice).patch("/api/cache/settings/", {"target_wrong_hit_rate": value}, format="json")
    assert response.status_code == 200 and response.json()["target_wrong_hit_rate"] == value
    assert stored(party.tenant) == {**DEFAULTS, "target_wrong_hit_rate": value}
    assert as_user(party.bob).get("/api/settings/").json()["cache_target_wrong_hit_rate"] == value


def test_a_change_through_the_cache_api_is_audited_value_by_value(party):
    as_user(party.alice).patch("/api/cache/settings/", {"ttl_seconds": 3600, "enabled": True}, format="json")
    events = AuditEvent.objects.for_tenant(party.tenant).filter(area="cache")
    assert [(e.actor, e.field, e.old_value, e.new_value) for e in events] == [
        (party.alice, "ttl_seconds", 7 * 24 * 3600, 3600)]  # enabled was already on
