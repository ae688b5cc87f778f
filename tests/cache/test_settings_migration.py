"""Moving the cache settings from Tenant columns to CacheSettings rows keeps every tenant's
values, and going back restores them in the columns."""

import pytest
from django.db import connection

from apps.cache.selectors import cache_settings_for
from apps.cache.services import cache_settings_update
from tests import factories
from tests.migrations import migrate_to, migrate_to_latest

BEFORE = [("cache", "0002_partition_by_context"), ("tenants", "0005_cache_threshold_default")]
COLUMNS = ["cache_enabled", "cache_threshold", "cache_ttl_seconds", "cache_user_scope", "cache_tool_calls",
           "cache_high_temperature"]
CUSTOM = (False, 0.97, 3600, True, True, True)
DEFAULT = (True, 0.90, 7 * 24 * 3600, False, False, False)


def columns_of(tenant) -> tuple:
    with connection.cursor() as cur:
        cur.execute(f"SELECT {', '.join(COLUMNS)} FROM tenants_tenant WHERE id = %s", [tenant.pk])
        return cur.fetchone()


def settings_of(tenant) -> tuple:
    row = cache_settings_for(tenant=tenant)
    return (row.enabled, row.threshold, row.ttl_seconds, row.user_scope, row.tool_calls, row.high_temperature)


@pytest.mark.django_db(transaction=True)
def test_every_tenants_values_move_to_its_row_and_back():
    tuned, _ = factories.make_tenant()
    untouched, _ = factories.make_tenant()
    migrate_to(*BEFORE)
    try:
        assert columns_of(untouched) == DEFAULT
        with connection.cursor() as cur:
            cur.execute(f"UPDATE tenants_tenant SET {', '.join(f'{c} = %s' for c in COLUMNS)} WHERE id = %s",
                        [*CUSTOM, tuned.pk])
    finally:
        migrate_to_latest()
    assert settings_of(tuned) == CUSTOM
    assert settings_of(untouched) == DEFAULT
    assert not cache_settings_for(tenant=untouched)._state.adding  # every tenant got its row

    cache_settings_update(tenant=untouched, changes={"threshold": 0.85})
    migrate_to(*BEFORE)
    try:
        assert columns_of(tuned) == CUSTOM
        assert columns_of(untouched) == (True, 0.85, 7 * 24 * 3600, False, False, False)
    finally:
        migrate_to_latest()
