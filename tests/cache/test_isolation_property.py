"""Property: a lookup never returns an entry of another tenant, scope or context key."""

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.cache import store
from apps.core import pg
from tests import factories
from tests.cache.helpers import unit

SCOPES = ["", "user:alice", "user:bob"]
CONTEXTS = ["ctx-a", "ctx-b", "ctx-c"]
DAY = timedelta(days=1)


def key_of(seed: int, n: int, prompt: str) -> str:
    return hashlib.sha256(f"{seed}-{n}-{prompt}".encode("utf-8", "surrogatepass")).hexdigest()


@pytest.fixture
def world(transactional_db):
    """Three tenants and an event loop that outlives the examples (one pool for all)."""
    tenants = [factories.make_tenant()[0].pk for _ in range(3)]
    loop = asyncio.new_event_loop()
    yield tenants, loop
    loop.run_until_complete(pg.close_pools())
    loop.close()


entry = st.tuples(st.integers(0, 2), st.sampled_from(SCOPES), st.sampled_from(CONTEXTS), st.integers(0, 10**6),
                  st.text(min_size=1, max_size=30))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=st.lists(entry, min_size=1, max_size=25), query=entry, near=st.booleans())
def test_lookup_stays_inside_tenant_scope_and_context(world, entries, query, near):
    tenants, loop = world

    async def scenario():
        written = {}
        for n, (t, scope, context, seed, prompt) in enumerate(entries):
            entry_id = await store.insert(
                tenant_id=tenants[t], scope=scope, context_key=context, exact_key=key_of(seed, n, prompt),
                api_key_id=None, prompt_text=prompt, vector=unit(seed), neighbour_stat=None, response={"content": "x"},
                model="m", ttl=DAY, now=datetime.now(UTC), generation=0)
            written[entry_id] = (tenants[t], scope, context)
        t, scope, context, seed, _ = query
        # Sometimes query right next to an entry of a *different* tenant/scope/context.
        vector = unit(entries[0][3]) if near else unit(seed)
        rows = await store.nearest(tenant_id=tenants[t], scope=scope, context_key=context, vector=vector, k=20, ttl=DAY)
        assert all(written[r.id] == (tenants[t], scope, context) for r in rows)
        expected = sum(1 for v in written.values() if v == (tenants[t], scope, context))
        assert len(rows) == min(expected, 20)  # filtered search stays exact: nothing missing either
        # The chosen candidate's answer is read by id, under the same tenant, scope and context:
        # any other entry's id reads nothing.
        for entry_id, owner in written.items():
            found = await store.answer(tenant_id=tenants[t], scope=scope, context_key=context, entry_id=entry_id, ttl=DAY)
            assert (found is not None) == (owner == (tenants[t], scope, context))
            assert found is None or found.id == entry_id
        # The exact path too: another tenant's exact key finds nothing.
        found = await store.exact(tenant_id=tenants[t], context_key=context,
                                  exact_key=key_of(entries[0][3], 0, entries[0][4]), ttl=DAY)
        assert (found is not None) == (entries[0][0] == t and entries[0][2] == context)
        assert found is None or written[found.id][0] == tenants[t]
        async with (await pg.pool()).connection() as conn:
            await conn.execute("DELETE FROM cache_entry WHERE id = ANY(%s)", [list(written)])

    loop.run_until_complete(scenario())


def test_a_new_entry_moves_its_neighbours_radius_as_the_rule_says(world):
    from apps.cache.decision import UPDATE_RATE, update_statistic

    tenants, loop = world

    async def scenario():
        common = dict(tenant_id=tenants[0], scope="", context_key="ctx", api_key_id=None, prompt_text="p",
                      response={"content": "x"}, model="m", ttl=DAY, now=datetime.now(UTC), generation=0)
        old = await store.insert(exact_key="a" * 64, vector=unit(1), neighbour_stat=0.70, **common)
        far = await store.insert(exact_key="b" * 64, vector=unit(2), neighbour_stat=0.95, **common)
        await store.insert(exact_key="c" * 64, vector=unit(3), neighbour_stat=None, neighbours={old: 0.90, far: 0.90},
                           update_rate=UPDATE_RATE, **common)
        rows = {r.id: r.neighbour_stat for r in await store.nearest(
            tenant_id=tenants[0], scope="", context_key="ctx", vector=unit(1), k=5, ttl=DAY)}
        assert rows[old] == pytest.approx(update_statistic(0.70, 0.90))
        assert rows[far] == 0.95  # the newcomer is outside its radius: unchanged

    loop.run_until_complete(scenario())
