import asyncio
import uuid

import pytest

from apps.core.errors import ApiError
from apps.tenants import ratelimit
from apps.tenants.keyauth import Principal

pytestmark = pytest.mark.anyio


def principal(tenant_rpm: int, key_rpm: int, tenant_id: int | None = None) -> Principal:
    return Principal(
        api_key_id=str(uuid.uuid4()),
        tenant_id=tenant_id or uuid.uuid4().int % 10**9,
        tenant_slug="t",
        tenant_status="active",
        price_per_call_cents=10,
        tenant_rpm=tenant_rpm,
        key_rpm=key_rpm,
    )


async def test_key_limit_answers_429_with_retry_after():
    p = principal(tenant_rpm=100, key_rpm=3)
    for _ in range(3):
        await ratelimit.enforce(p)
    with pytest.raises(ApiError) as err:
        await ratelimit.enforce(p)
    assert err.value.status == 429
    assert 1 <= int(err.value.headers["Retry-After"]) <= 60
    assert "API key" in err.value.message


async def test_tenant_limit_spans_its_keys():
    first = principal(tenant_rpm=4, key_rpm=100)
    second = principal(tenant_rpm=4, key_rpm=100, tenant_id=first.tenant_id)
    for p in (first, first, second, second):
        await ratelimit.enforce(p)
    with pytest.raises(ApiError) as err:
        await ratelimit.enforce(second)
    assert err.value.status == 429 and "account" in err.value.message


async def test_limit_is_exact_under_concurrency():
    p = principal(tenant_rpm=1000, key_rpm=10)

    async def attempt():
        try:
            await ratelimit.enforce(p)
            return True
        except ApiError:
            return False

    results = await asyncio.gather(*(attempt() for _ in range(50)))
    assert results.count(True) == 10


async def test_zero_means_unlimited():
    p = principal(tenant_rpm=0, key_rpm=0)
    for _ in range(50):
        await ratelimit.enforce(p)
