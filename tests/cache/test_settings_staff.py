"""Staff tune a tenant's cache settings: the Django admin and `set_cache_threshold`."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apps.cache.selectors import cache_settings_for
from apps.cache.services import cache_settings_update


def test_staff_add_settings_for_a_tenant_that_runs_on_the_defaults(admin_client, party):
    response = admin_client.post("/admin/cache/cachesettings/add/", {
        "tenant": party.tenant.pk, "enabled": "on", "threshold": "0.93", "ttl_seconds": "3600"})
    assert response.status_code == 302
    current = cache_settings_for(tenant=party.tenant)
    assert (current.threshold, current.ttl_seconds, current.enabled) == (0.93, 3600, True)
    assert cache_settings_for(tenant=party.other_tenant)._state.adding


def test_set_cache_target_command(party):
    out = StringIO()
    call_command("set_cache_target", party.tenant.slug, "0.5%", stdout=out)
    assert out.getvalue().strip() == f"{party.tenant.slug} cache target wrong-hit rate 0.50%"
    assert cache_settings_for(tenant=party.tenant).target_wrong_hit_rate == 0.005
    call_command("set_cache_target", party.tenant.slug, "0.02", stdout=StringIO())
    assert cache_settings_for(tenant=party.tenant).target_wrong_hit_rate == 0.02
    with pytest.raises(CommandError, match="0.1"):
        call_command("set_cache_target", party.tenant.slug, "20%")
    with pytest.raises(CommandError, match="not a rate"):
        call_command("set_cache_target", party.tenant.slug, "strict")
    assert cache_settings_for(tenant=party.tenant).target_wrong_hit_rate == 0.02
    call_command("set_cache_target", party.tenant.slug, "off", stdout=StringIO())
    assert cache_settings_for(tenant=party.tenant).target_wrong_hit_rate is None
    assert cache_settings_for(tenant=party.other_tenant)._state.adding


def test_staff_cannot_add_a_second_row_for_a_tenant(admin_client, party):
    cache_settings_update(tenant=party.tenant, changes={"threshold": 0.95})
    response = admin_client.post("/admin/cache/cachesettings/add/", {
        "tenant": party.tenant.pk, "threshold": "0.85", "ttl_seconds": "3600"})
    assert response.status_code == 200 and "with this tenant already exists" in response.content.decode()
    assert cache_settings_for(tenant=party.tenant).threshold == 0.95


def test_staff_list_and_change_every_tenants_settings(admin_client, party):
    cache_settings_update(tenant=party.tenant, changes={"threshold": 0.95})
    cache_settings_update(tenant=party.other_tenant, changes={"enabled": False})
    listing = admin_client.get("/admin/cache/cachesettings/").content.decode()
    assert party.tenant.slug in listing and party.other_tenant.slug in listing
    response = admin_client.post(f"/admin/cache/cachesettings/{party.tenant.pk}/change/", {
        "enabled": "on", "threshold": "0.97", "ttl_seconds": "3600"})
    assert response.status_code == 302
    assert cache_settings_for(tenant=party.tenant).threshold == 0.97
    assert cache_settings_for(tenant=party.other_tenant).enabled is False


def test_set_cache_threshold_command(party):
    out = StringIO()
    call_command("set_cache_threshold", party.tenant.slug, "0.93", stdout=out)
    assert out.getvalue().strip() == f"{party.tenant.slug} cache threshold 0.93"
    assert cache_settings_for(tenant=party.tenant).threshold == 0.93
    with pytest.raises(CommandError, match="0.999"):
        call_command("set_cache_threshold", party.tenant.slug, "1.5")
    with pytest.raises(CommandError, match="finite"):   # NaN passes both bounds, and broke the settings API
        call_command("set_cache_threshold", party.tenant.slug, "nan")
    with pytest.raises(CommandError, match="no tenant"):
        call_command("set_cache_threshold", "nobody", "0.9")
    assert cache_settings_for(tenant=party.tenant).threshold == 0.93
    assert cache_settings_for(tenant=party.other_tenant)._state.adding
