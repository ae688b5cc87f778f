"""The gateway's per-process snapshot of a tenant's cache settings (apps.cache.services.snapshot)."""

import time
from dataclasses import replace

from asgiref.sync import async_to_sync

from apps.cache import services
from apps.cache.models import CacheSettings

snapshot = async_to_sync(services.snapshot)
DEFAULTS = services.Config(enabled=True, threshold=0.85, target_wrong_hit_rate=0.01, ttl_seconds=7 * 24 * 3600,
                           user_scope=False, tool_calls=False, high_temperature=False, generation=0)


def test_a_tenant_without_a_row_runs_on_the_model_defaults(party):
    assert snapshot(party.tenant.pk) == DEFAULTS


def test_one_query_per_tenant_and_ttl_then_the_change_is_seen(party, settings, django_assert_num_queries):
    settings.AKA_KEY_CACHE_TTL = 0.3
    with django_assert_num_queries(1):
        for _ in range(100):
            assert snapshot(party.tenant.pk) == DEFAULTS
    # As another process would write it: this process's snapshot does not hear of it.
    CacheSettings.objects.for_tenant(party.tenant).create(tenant=party.tenant, threshold=0.97)
    assert snapshot(party.tenant.pk).threshold == 0.85
    time.sleep(0.35)
    assert snapshot(party.tenant.pk) == replace(DEFAULTS, threshold=0.97)


def test_a_change_made_in_this_process_is_seen_at_once(party, django_capture_on_commit_callbacks):
    assert snapshot(party.tenant.pk).enabled is True
    with django_capture_on_commit_callbacks(execute=True):
        services.cache_settings_update(tenant=party.tenant, changes={"enabled": False})
    assert snapshot(party.tenant.pk).enabled is False
    assert snapshot(party.other_tenant.pk).enabled is True
