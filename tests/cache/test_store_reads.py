"""The semantic lookup's reads: candidates without their answers except the nearest
one's, then any other chosen one's answer, under the same conditions; single statements
outside a transaction, on pool connections that go back to the pool as the writers
expect them."""

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from apps.cache import services, store, verifier
from apps.cache.decision import COHERENCE_K
from apps.core import pg
from tests import factories
from tests.cache.helpers import unit

DAY, MINUTE = timedelta(days=1), timedelta(minutes=1)


@pytest.fixture
def loop(transactional_db):
    loop = asyncio.new_event_loop()
    yield loop
    loop.run_until_complete(pg.close_pools())
    loop.close()


async def write(tenant_id: int, n: int, *, ttl=DAY, now=None) -> int:
    return await store.insert(
        tenant_id=tenant_id, scope="", context_key="ctx", exact_key=f"key{n}", api_key_id=None, prompt_text=f"q{n}",
        vector=unit(n), neighbour_stat=0.5, response={"content": f"answer {n}", "finish_reason": "stop"}, model="m",
        ttl=ttl, now=now or datetime.now(UTC), generation=0)


def test_the_chosen_candidate_is_answered_unless_demoted_expired_or_purged_since(loop):
    tenant, _ = factories.make_tenant()

    async def scenario():
        kept, demoted, purged = [await write(tenant.pk, n) for n in range(3)]
        expired = await write(tenant.pk, 3, ttl=timedelta(seconds=60), now=datetime.now(UTC) - timedelta(minutes=2))
        candidates = await store.nearest(tenant_id=tenant.pk, scope="", context_key="ctx", vector=unit(0), k=20, ttl=DAY)
        assert {c.id for c in candidates} == {kept, demoted, purged}   # the expired one is never a candidate
        assert await store.demote(tenant_id=tenant.pk, entry_id=demoted)
        async with (await pg.pool()).connection() as conn:
            await conn.execute("DELETE FROM cache_entry WHERE tenant_id = %s AND id = %s", [tenant.pk, purged])

        def answer(entry_id):
            return store.answer(tenant_id=tenant.pk, scope="", context_key="ctx", entry_id=entry_id, ttl=DAY)

        found = await answer(kept)
        assert (found.id, found.response["content"], found.model) == (kept, "answer 0", "m")
        assert [await answer(i) for i in (demoted, purged, expired)] == [None, None, None]
        assert await store.answer(tenant_id=tenant.pk, scope="user:x", context_key="ctx", entry_id=kept, ttl=DAY) is None

    loop.run_until_complete(scenario())


def test_an_entry_older_than_the_tenants_ttl_now_is_not_read(loop):
    """Its expires_at is the TTL when it was written; a TTL lowered since applies at once."""
    tenant, _ = factories.make_tenant()

    async def scenario():
        entry_id = await write(tenant.pk, 1)
        async with (await pg.pool()).connection() as conn:
            await conn.execute("UPDATE cache_entry SET created_at = now() - interval '2 minutes' WHERE id = %s",
                               [entry_id])
        reads = {"exact": store.exact(tenant_id=tenant.pk, context_key="ctx", exact_key="key1", ttl=MINUTE),
                 "nearest": store.nearest(tenant_id=tenant.pk, scope="", context_key="ctx", vector=unit(1), k=20,
                                          ttl=MINUTE),
                 "answer": store.answer(tenant_id=tenant.pk, scope="", context_key="ctx", entry_id=entry_id,
                                        ttl=MINUTE)}
        assert {name: await read for name, read in reads.items()} == {"exact": None, "nearest": [], "answer": None}
        assert (await store.exact(tenant_id=tenant.pk, context_key="ctx", exact_key="key1", ttl=DAY)).id == entry_id

    loop.run_until_complete(scenario())


def test_reads_return_their_connection_to_the_pool_in_transaction_mode(loop):
    """The ledger's writer relies on it: its SET LOCAL and batch share one transaction."""
    tenant, _ = factories.make_tenant()

    async def scenario():
        entry_id = await write(tenant.pk, 1)
        await store.exact(tenant_id=tenant.pk, context_key="ctx", exact_key="key1", ttl=DAY)
        await store.nearest(tenant_id=tenant.pk, scope="", context_key="ctx", vector=unit(1), k=20, ttl=DAY)
        await store.answer(tenant_id=tenant.pk, scope="", context_key="ctx", entry_id=entry_id, ttl=DAY)
        pool = await pg.pool()
        connections = [await pool.getconn() for _ in range(pool.get_stats()["pool_available"])]
        try:
            assert connections and not any(conn.autocommit for conn in connections)
        finally:
            for conn in connections:
                await pool.putconn(conn)

    loop.run_until_complete(scenario())


def test_the_nearest_candidate_comes_with_the_entry_a_separate_read_returns(loop):
    tenant, _ = factories.make_tenant()

    async def scenario():
        ids = [await write(tenant.pk, n) for n in range(5)]
        near = unit(3) + 0.05 * unit(4)
        candidates = await store.nearest(tenant_id=tenant.pk, scope="", context_key="ctx",
                                         vector=near / (near ** 2).sum() ** 0.5, k=20, ttl=DAY)
        assert [c.id for c in candidates][:1] == [ids[3]]
        assert [c.similarity for c in candidates] == sorted((c.similarity for c in candidates), reverse=True)
        assert candidates[0].entry == await store.answer(tenant_id=tenant.pk, scope="", context_key="ctx",
                                                         entry_id=ids[3], ttl=DAY)
        assert candidates[0].entry.response["content"] == "answer 3"
        assert [c.entry for c in candidates[1:]] == [None] * 4

    loop.run_until_complete(scenario())


def test_only_the_ten_nearest_candidates_come_with_their_vectors_and_prompts(loop):
    """The first stage and the verifier read no other (tests/cache/test_decision.py): the
    rest would be half of the bytes a lookup reads and parses."""
    tenant, _ = factories.make_tenant()

    async def scenario():
        ids = [await write(tenant.pk, n) for n in range(COHERENCE_K + 3)]
        candidates = await store.nearest(tenant_id=tenant.pk, scope="", context_key="ctx", vector=unit(0), k=20, ttl=DAY)
        assert sorted(c.id for c in candidates) == ids
        assert [c.embedding is None for c in candidates] == [False] * COHERENCE_K + [True] * 3
        assert [c.prompt_text for c in candidates] == [f"q{ids.index(c.id)}" for c in candidates[:COHERENCE_K]] + [None] * 3
        for c in candidates[:COHERENCE_K]:
            assert c.embedding.tobytes() == unit(ids.index(c.id)).tobytes()
            assert c.neighbour_stat == 0.5
        assert [c.neighbour_stat for c in candidates[COHERENCE_K:]] == [0.5] * 3

    loop.run_until_complete(scenario())


def plan(tenant_id: int, prompt: str) -> services.Plan:
    return services.Plan(tenant_id=tenant_id, api_key_id="k", scope="", context="ctx", exact="none", prompt=prompt,
                         threshold=0.5, target=None, ttl_seconds=60, tool_calls=False, generation=0)


def test_a_hit_on_the_nearest_entry_reads_no_more_and_another_choice_reads_its_own_answer(loop, monkeypatch):
    """The first stage may choose a candidate other than the nearest (its neighbourhood
    agrees better): that one's answer is served, not the nearest one's."""
    tenant, _ = factories.make_tenant()
    reads = []
    answer = store.answer

    async def counted(**kwargs):
        reads.append(kwargs["entry_id"])
        return await answer(**kwargs)

    monkeypatch.setattr(store, "answer", counted)

    def embed(text):
        vector = asyncio.get_running_loop().create_future()
        vector.set_result(unit(int(text)))
        return vector

    monkeypatch.setattr(services, "batcher", lambda: type("Batcher", (), {"embed": staticmethod(embed)})())

    async def scenario():
        ids = [await write(tenant.pk, n) for n in range(4)]
        hit = await services.lookup(plan(tenant.pk, "2"))
        assert (hit.kind, hit.entry_id, hit.result.content, reads) == ("semantic", ids[2], "answer 2", [])
        second = lambda candidates, threshold, n: [(sorted(candidates, key=lambda c: -c.similarity)[1], 0.9)]  # noqa: E731
        monkeypatch.setattr(services, "ranked", second)
        hit = await services.lookup(plan(tenant.pk, "2"))
        assert hit.entry_id != ids[2] and reads == [hit.entry_id]
        assert hit.result.content == f"answer {ids.index(hit.entry_id)}"
        # The second stage refuses every candidate: no answer is read at all.
        monkeypatch.setattr(verifier, "choose", lambda *args, **kwargs: [])
        refused = await services.lookup(replace(plan(tenant.pk, "2"), target=0.01))
        assert isinstance(refused, services.Miss) and reads == [hit.entry_id]

    loop.run_until_complete(scenario())


def test_an_accepted_entry_purged_since_the_candidates_were_read_gives_way_to_the_next_accepted(loop, monkeypatch):
    """A purge between the candidate read and the answer read: the next entry the second
    stage accepted is served; with none left, a miss."""
    tenant, _ = factories.make_tenant()
    reads = []
    answer = store.answer

    async def purged_first(**kwargs):   # the first answer read races a purge of its entry
        reads.append(kwargs["entry_id"])
        if len(reads) == 1:
            async with (await pg.pool()).connection() as conn:
                await conn.execute("DELETE FROM cache_entry WHERE tenant_id = %s AND id = %s",
                                   [tenant.pk, kwargs["entry_id"]])
        return await answer(**kwargs)

    def embed(text):
        vector = asyncio.get_running_loop().create_future()
        vector.set_result(unit(int(text)))
        return vector

    monkeypatch.setattr(store, "answer", purged_first)
    monkeypatch.setattr(services, "batcher", lambda: type("Batcher", (), {"embed": staticmethod(embed)})())
    # The first stage offers two entries other than the nearest, and the verifier accepts both.
    monkeypatch.setattr(services, "ranked", lambda candidates, threshold, n: [
        (c, 0.9) for c in sorted(candidates, key=lambda c: -c.similarity)[1:3]])
    monkeypatch.setattr(verifier, "choose", lambda query, choices, **kwargs: [c for c, _, _ in choices])

    async def scenario():
        [await write(tenant.pk, n) for n in range(4)]
        hit = await services.lookup(replace(plan(tenant.pk, "2"), target=0.01))
        first, second = reads
        assert (hit.kind, hit.entry_id) == ("semantic", second)
        reads.clear()   # now the verifier accepts one entry, and it is purged as it is read
        monkeypatch.setattr(verifier, "choose", lambda query, choices, **kwargs: [choices[0][0]])
        gone = await services.lookup(replace(plan(tenant.pk, "2"), target=0.01))
        assert isinstance(gone, services.Miss) and len(reads) == 1 and reads[0] != first

    loop.run_until_complete(scenario())


def test_the_embedding_runs_beside_the_exact_lookup_unless_the_key_hit_exactly_here_before(loop, monkeypatch):
    """An exact key this process has not seen hit is embedded while its exact lookup runs
    (a semantic hit or a miss needs the vector: one round trip less on its path); a key
    it served exactly before is looked up first and never embedded."""
    tenant, _ = factories.make_tenant()
    events = []
    exact = store.exact
    looked_up = asyncio.Event()

    async def logged_exact(**kwargs):
        found = await exact(**kwargs)
        events.append("exact")
        looked_up.set()
        return found

    def embed(text):
        # Started when asked (as the batcher does), finished only once the exact lookup
        # has answered: an embedding run before it, rather than beside it, times out here.
        events.append("embed")

        async def vector():
            await asyncio.wait_for(looked_up.wait(), 10)
            return unit(int(text))
        return asyncio.ensure_future(vector())

    monkeypatch.setattr(store, "exact", logged_exact)
    monkeypatch.setattr(services, "batcher", lambda: type("Batcher", (), {"embed": staticmethod(embed)})())
    monkeypatch.setattr(services, "exact_keys", services.ExactKeys())

    async def scenario():
        await write(tenant.pk, 1)
        hits = []
        for _ in range(2):
            found = await services.lookup(replace(plan(tenant.pk, "1"), exact="key1"))
            hits.append((found.kind, found.result.content))
        assert hits == [("exact", "answer 1")] * 2
        assert events == ["embed", "exact", "exact"]   # the second lookup knew the key
        events.clear()
        looked_up.clear()
        found = await services.lookup(plan(tenant.pk, "1"))
        assert (found.kind, found.result.content, events) == ("semantic", "answer 1", ["embed", "exact"])

    loop.run_until_complete(scenario())


def test_exact_keys_forget_the_least_recently_added_beyond_their_limit(monkeypatch):
    monkeypatch.setattr(services.ExactKeys, "LIMIT", 3)
    keys = services.ExactKeys()
    for key in "abc":
        keys.add(key)
    keys.add("a")   # seen again: the newest
    keys.add("d")
    assert [k in keys for k in "abcd"] == [True, False, True, True]
