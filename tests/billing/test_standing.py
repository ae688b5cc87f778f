"""Billing's admission checks on their own: the suspension rule, the monthly cap in Redis
(exact under concurrency, fail open without Redis), and the ledger's insert leaving the
billing stamps empty."""

import asyncio
import contextlib
import time
import uuid

import pytest
from django.test import override_settings

from apps.billing import standing
from apps.billing.ledger import normalise
from apps.billing.services import CallFacts, ledger_row
from apps.billing.standing import Standing
from apps.core.errors import ApiError
from apps.core.redis import async_client, sync_client

pytestmark = pytest.mark.anyio


def tenant_with(cap: int = 0, unpaid_since: float | None = None) -> int:
    tenant_id = uuid.uuid4().int % 10**9
    standing._standings._keep(tenant_id, Standing(unpaid_since, cap))  # as if loaded from its rows
    sync_client().delete(standing.quota_key(tenant_id))
    return tenant_id


@contextlib.contextmanager
def redis_at(url: str):
    with override_settings(REDIS_URL=url):
        async_client.drain()
        yield
    async_client.drain()


def test_suspended_only_after_the_grace_period(settings):
    settings.AKA_BILLING_GRACE_SECONDS = 3600
    now = time.time()
    assert not standing.suspended(Standing(None), now)
    assert not standing.suspended(Standing(now - 3500), now)
    assert standing.suspended(Standing(now - 3700), now)


async def test_a_suspended_tenant_is_refused_with_402(settings):
    settings.AKA_BILLING_GRACE_SECONDS = 60
    tenant_id = tenant_with(unpaid_since=time.time() - 120)
    with pytest.raises(ApiError) as refused:
        await standing.admit(tenant_id=tenant_id)
    assert (refused.value.status, refused.value.code) == (402, "payment_required")
    await standing.admit(tenant_id=tenant_with(unpaid_since=time.time() - 10))


async def test_the_cap_is_exact_under_concurrency():
    tenant_id = tenant_with(cap=20)

    async def attempt() -> bool:
        try:
            await standing.quota_count(tenant_id=tenant_id)
            return True
        except ApiError as exc:
            assert (exc.status, exc.code) == (429, "insufficient_quota")
            return False

    admitted = await asyncio.gather(*[attempt() for _ in range(60)])
    assert sum(admitted) == 20
    assert int(sync_client().get(standing.quota_key(tenant_id))) == 20  # refused calls took nothing
    assert standing.near_cap(tenant_id)


async def test_no_cap_counts_nothing():
    tenant_id = tenant_with(cap=0)
    for _ in range(3):
        await standing.quota_count(tenant_id=tenant_id)
    assert sync_client().get(standing.quota_key(tenant_id)) is None


async def test_without_redis_the_cap_fails_open():
    tenant_id = tenant_with(cap=1)
    with redis_at("unix:///nonexistent/redis.sock"):
        for _ in range(3):
            await standing.quota_count(tenant_id=tenant_id)
    await standing.quota_count(tenant_id=tenant_id)  # the test Redis again: counted
    with pytest.raises(ApiError):
        await standing.quota_count(tenant_id=tenant_id)


def test_the_gateways_insert_leaves_the_billing_stamps_empty():
    row = normalise(ledger_row(facts=CallFacts(tenant_id=1, api_key_id=None, request_id="req_x", endpoint="chat.completions",
                                               status=200, price_per_call_cents=10)))
    assert (row["meter_window_id"], row["invoice_id"]) == (None, None)
