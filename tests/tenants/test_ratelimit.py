import asyncio
import contextlib
import logging
import time
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings
from django.test import override_settings
from prometheus_client import REGISTRY

from apps.core.errors import ApiError
from apps.core.redis import ASYNC_TIMEOUT_SECONDS, async_client, sync_client
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


async def admitted(p: Principal, attempts: int) -> int:
    count = 0
    for _ in range(attempts):
        try:
            await ratelimit.enforce(p)
            count += 1
        except ApiError:
            pass
    return count


async def test_full_burst_then_one_call_per_emission_interval():
    p = principal(tenant_rpm=1000, key_rpm=20)
    assert await admitted(p, 20) == 20
    with pytest.raises(ApiError) as err:
        await ratelimit.enforce(p)
    assert err.value.headers["Retry-After"] == "3"  # 60 s / 20, not the rest of a calendar minute
    assert 57_000 < sync_client().pttl(f"rl:k:{p.api_key_id}") <= 60_000  # kept until its TAT, no longer


async def test_budget_refills_steadily_not_at_the_next_minute():
    """A fixed window admits nothing more until the calendar minute turns, then a whole new
    burst (40 calls in a few seconds at 20/min). GCRA admits one more call a second later
    at 60/min, whatever the wall clock says."""
    p = principal(tenant_rpm=60, key_rpm=1000)
    assert await admitted(p, 60) == 60
    start, late = time.monotonic(), 0
    while time.monotonic() - start < 1.4:  # the next call is due 1 s after the burst, the one after at 2 s
        late += await admitted(p, 1)
        await asyncio.sleep(0.05)
    assert late == 1


async def test_remaining_budget_drives_near_limit():
    p = principal(tenant_rpm=1000, key_rpm=20)  # margin: max(2, 10% of 20) = 2
    sibling = principal(tenant_rpm=30, key_rpm=1000)
    assert not ratelimit.near_limit(p)  # nothing known yet
    assert await admitted(p, 17) == 17
    assert not ratelimit.near_limit(p)  # 3 left
    await ratelimit.enforce(p)
    assert ratelimit.near_limit(p)  # 2 left
    assert await admitted(p, 5) == 2
    assert ratelimit.near_limit(p)  # refused: 0 left

    same_tenant = principal(tenant_rpm=30, key_rpm=1000, tenant_id=sibling.tenant_id)
    assert await admitted(sibling, 26) == 26
    assert not ratelimit.near_limit(same_tenant)  # tenant margin: 3; 4 left
    await ratelimit.enforce(sibling)
    assert ratelimit.near_limit(same_tenant)  # the tenant's budget is shared by its keys


async def test_near_limit_is_false_when_unlimited():
    p = principal(tenant_rpm=0, key_rpm=0)
    assert await admitted(p, 20) == 20
    assert not ratelimit.near_limit(p)


def degraded_count() -> float:
    return REGISTRY.get_sample_value("aka_degraded_total", {"component": "redis"}) or 0.0


@contextlib.contextmanager
def redis_at(url: str):
    """The async client pointed at `url`, then back at the test Redis."""
    with override_settings(REDIS_URL=url):
        async_client.drain()
        yield
    async_client.drain()


async def test_unreachable_redis_lets_calls_through(caplog):
    p = principal(tenant_rpm=1, key_rpm=1)
    before = degraded_count()
    with redis_at("unix:///nonexistent/redis.sock"), caplog.at_level(logging.WARNING, logger=ratelimit.__name__):
        for _ in range(5):
            await ratelimit.enforce(p)
    assert degraded_count() == before + 5
    assert len(caplog.records) <= 1  # one warning every few seconds, not one per call
    await ratelimit.enforce(p)  # the test Redis again: counted
    with pytest.raises(ApiError):
        await ratelimit.enforce(p)


async def test_an_unlimited_tenant_and_key_cost_no_round_trip_to_redis():
    p = principal(tenant_rpm=0, key_rpm=0)
    before = degraded_count()
    with redis_at("unix:///nonexistent/redis.sock"):
        for _ in range(3):
            await ratelimit.enforce(p)
    assert degraded_count() == before  # Redis was never asked


async def test_hung_redis_costs_a_call_only_the_timeout(tmp_path):
    held = []  # accepted, never answered
    silent = await asyncio.start_unix_server(lambda reader, writer: held.append(writer), str(tmp_path / "hung.sock"))
    try:
        with redis_at(f"unix://{tmp_path / 'hung.sock'}"):
            start = time.monotonic()
            await ratelimit.enforce(principal(tenant_rpm=1, key_rpm=1))
            assert ASYNC_TIMEOUT_SECONDS <= time.monotonic() - start < 1
    finally:
        silent.close()


async def test_client_recovers_when_redis_comes_back(tmp_path):
    """Redis behind a unix-socket relay that goes away and comes back: the same client
    object fails open while it is gone and enforces again once it is back."""
    target = urlsplit(settings.REDIS_URL).path
    path = str(tmp_path / "relay.sock")
    open_streams = []

    async def pipe(reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    async def relay(client_reader, client_writer):
        server_reader, server_writer = await asyncio.open_unix_connection(target)
        open_streams.extend((client_writer, server_writer))
        await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer))

    async def down(server):
        server.close()
        for writer in open_streams:
            writer.close()
        open_streams.clear()
        await asyncio.sleep(0.05)

    db = parse_qs(urlsplit(settings.REDIS_URL).query).get("db", ["0"])[0]
    p = principal(tenant_rpm=100, key_rpm=1)
    server = await asyncio.start_unix_server(relay, path)
    with redis_at(f"unix://{path}?db={db}"):
        client = async_client()
        await ratelimit.enforce(p)
        await down(server)
        before = degraded_count()
        await ratelimit.enforce(p)  # Redis gone: let through
        assert degraded_count() == before + 1
        server = await asyncio.start_unix_server(relay, path)
        with pytest.raises(ApiError):
            await ratelimit.enforce(p)  # back: the key's one call a minute is spent
        assert async_client() is client
        await down(server)
