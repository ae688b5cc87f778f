"""The semantic lookup's reads: candidates without their answers, then the chosen one's
answer, under the same conditions; single statements outside a transaction, on pool
connections that go back to the pool as the writers expect them."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from apps.cache import store
from apps.core import pg
from tests import factories
from tests.cache.helpers import unit


@pytest.fixture
def loop(transactional_db):
    loop = asyncio.new_event_loop()
    yield loop
    loop.run_until_complete(pg.close_pools())
    loop.close()


async def write(tenant_id: int, n: int, *, ttl=timedelta(days=1), now=None) -> int:
    return await store.insert(
        tenant_id=tenant_id, scope="", context_key="ctx", exact_key=f"key{n}", api_key_id=None, prompt_text=f"q{n}",
        vector=unit(n), neighbour_stat=0.5, response={"content": f"answer {n}", "finish_reason": "stop"}, model="m",
        ttl=ttl, now=now or datetime.now(UTC))


def test_the_chosen_candidate_is_answered_unless_demoted_expired_or_purged_since(loop):
    tenant, _ = factories.make_tenant()

    async def scenario():
        kept, demoted, purged = [await write(tenant.pk, n) for n in range(3)]
        expired = await write(tenant.pk, 3, ttl=timedelta(seconds=60), now=datetime.now(UTC) - timedelta(minutes=2))
        candidates = await store.nearest(tenant_id=tenant.pk, scope="", context_key="ctx", vector=unit(0), k=20)
        assert {c.id for c in candidates} == {kept, demoted, purged}   # the expired one is never a candidate
        assert await store.demote(tenant_id=tenant.pk, entry_id=demoted)
        async with (await pg.pool()).connection() as conn:
            await conn.execute("DELETE FROM cache_entry WHERE tenant_id = %s AND id = %s", [tenant.pk, purged])

        def answer(entry_id):
            return store.answer(tenant_id=tenant.pk, scope="", context_key="ctx", entry_id=entry_id)

        found = await answer(kept)
        assert (found.id, found.response["content"], found.model, found.prompt_text) == (kept, "answer 0", "m", "q0")
        assert [await answer(i) for i in (demoted, purged, expired)] == [None, None, None]
        assert await store.answer(tenant_id=tenant.pk, scope="user:x", context_key="ctx", entry_id=kept) is None

    loop.run_until_complete(scenario())


def test_reads_return_their_connection_to_the_pool_in_transaction_mode(loop):
    """The ledger's writer relies on it: its SET LOCAL and batch share one transaction."""
    tenant, _ = factories.make_tenant()

    async def scenario():
        entry_id = await write(tenant.pk, 1)
        await store.exact(tenant_id=tenant.pk, context_key="ctx", exact_key="key1")
        await store.nearest(tenant_id=tenant.pk, scope="", context_key="ctx", vector=unit(1), k=20)
        await store.answer(tenant_id=tenant.pk, scope="", context_key="ctx", entry_id=entry_id)
        pool = await pg.pool()
        connections = [await pool.getconn() for _ in range(pool.get_stats()["pool_available"])]
        try:
            assert connections and not any(conn.autocommit for conn in connections)
        finally:
            for conn in connections:
                await pool.putconn(conn)

    loop.run_until_complete(scenario())
