import time

import pytest
from django.test import override_settings

from apps.core.errors import ApiError
from apps.tenants import services
from apps.tenants.keyauth import extract_key, resolve_key
from apps.tenants.models import Tenant
from tests import factories


def test_bearer_and_x_api_key_headers_are_both_read():
    assert extract_key({"authorization": "Bearer aka_abc"}) == "aka_abc"
    assert extract_key({"x-api-key": "aka_def"}) == "aka_def"
    assert extract_key({"authorization": "Basic zzz"}) is None
    assert extract_key({}) is None


def test_valid_key_resolves_to_its_tenant(party):
    key, raw = factories.make_key(party.tenant)
    principal = resolve_key(raw)
    assert principal.tenant_id == party.tenant.pk
    assert principal.api_key_id == str(key.pk)
    assert principal.price_per_call_cents == 10


def test_unknown_and_missing_keys_get_401(db):
    with pytest.raises(ApiError) as err:
        resolve_key("aka_" + "x" * 43)
    assert (err.value.status, err.value.code) == (401, "invalid_api_key")
    with pytest.raises(ApiError) as err:
        resolve_key(None)
    assert (err.value.status, err.value.code) == (401, "missing_api_key")
    assert "x-api-key" in err.value.message   # both headers work on both endpoints: Anthropic clients send this one


def test_suspended_tenant_gets_403(party):
    _, raw = factories.make_key(party.tenant)
    services.tenant_set_status(tenant=party.tenant, status=Tenant.Status.SUSPENDED)
    with pytest.raises(ApiError) as err:
        resolve_key(raw)
    assert (err.value.status, err.value.code) == (403, "account_suspended")


def test_resolved_key_is_served_from_process_cache(party, django_assert_num_queries):
    _, raw = factories.make_key(party.tenant)
    resolve_key(raw)
    with django_assert_num_queries(0):
        for _ in range(100):
            resolve_key(raw)


@override_settings(AKA_KEY_CACHE_TTL=0.3)
def test_revoked_key_is_rejected_once_the_cache_ttl_passes(party):
    key, raw = factories.make_key(party.tenant)
    assert resolve_key(raw).tenant_id == party.tenant.pk
    services.api_key_revoke(tenant=party.tenant, key_id=key.pk)
    time.sleep(0.35)
    with pytest.raises(ApiError) as err:
        resolve_key(raw)
    assert err.value.status == 401


def test_revoked_key_is_rejected(party):
    key, raw = factories.make_key(party.tenant)
    services.api_key_revoke(tenant=party.tenant, key_id=key.pk)
    with pytest.raises(ApiError) as err:
        resolve_key(raw)
    assert (err.value.status, err.value.code) == (401, "invalid_api_key")


def test_last_used_is_recorded(party):
    key, raw = factories.make_key(party.tenant)
    assert key.last_used_at is None
    resolve_key(raw)
    key.refresh_from_db()
    assert key.last_used_at is not None
