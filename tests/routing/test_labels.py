"""The tenant's labels in the process's memory (apps.routing.labels): the same neighbours
as the pgvector query, only the tenant's own, this process's labels counting from the next
call (even one written while a copy was loading), and the memory budget kept."""

import asyncio
import threading

import numpy as np
import pytest

from apps.core import pg
from apps.routing import labels, services, store
from apps.routing.predictor import belief
from apps.routing.store import Sample
from tests import factories
from tests.cache.helpers import unit

CHEAP, STRONG, OTHER = "mini", "big", "retired"
POOL = [CHEAP, STRONG]


def near(seed: int, spread: float) -> np.ndarray:
    """A prompt's embedding at a distance from unit(0) that grows with `spread`."""
    vector = unit(0) + spread * unit(seed)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


@pytest.fixture
def loop(transactional_db):
    labels.forget_all()
    loop = asyncio.new_event_loop()
    yield loop
    loop.run_until_complete(pg.close_pools())
    loop.close()
    labels.forget_all()


async def history(tenant_id: int, prompts: int, *, seed: int = 1, bad: float | None = None) -> None:
    """Labelled (and unlabelled) answers of both pool models and one outside it."""
    for i in range(prompts):
        samples = [Sample(f"r{seed}-{i}", CHEAP, "support", bad if bad is not None else [0.0, 1.0, 0.25][i % 3],
                          "feedback")]
        if i % 2 == 0:
            samples.append(Sample(f"r{seed}-{i}", STRONG, "support", bad if bad is not None else 1.0, "judge"))
        if i % 5 == 0:
            samples.append(Sample(f"r{seed}-{i}", OTHER, "support", 0.5, "feedback"))
        if i % 7 == 0:
            samples = [Sample(f"r{seed}-{i}", CHEAP, "support")]     # not labelled yet
        await store.insert(tenant_id=tenant_id, vector=near(seed * 1000 + i, 0.05 + 0.08 * i), samples=samples)


def canonical(neighbours):
    """Neighbours as a multiset, those tied at the farthest similarity only counted (pgvector
    orders a prompt's labels, which share a distance, as it finds them)."""
    last = min(n.similarity for n in neighbours)
    inner = sorted((n.model, n.good, round(n.similarity, 4)) for n in neighbours if n.similarity > last + 1e-6)
    return inner, sum(1 for n in neighbours if n.similarity <= last + 1e-6)


def test_the_copy_finds_the_neighbours_and_probabilities_of_the_pgvector_query(loop):
    tenant, _ = factories.make_tenant()

    async def scenario():
        await history(tenant.pk, 40)
        copy = await labels.load(tenant_id=tenant.pk)
        assert copy.size == 34    # every prompt but the six never labelled
        for query in (unit(0), near(99, 0.5), near(98, 2.0), unit(5)):
            for k in (16, 5, 60):
                queried = await store.nearest(tenant_id=tenant.pk, vector=query, models=POOL, k=k)
                found = copy.nearest(query, POOL, k)
                assert len(found) == len(queried) and canonical(found) == canonical(queried)
                assert [n.similarity for n in found] == pytest.approx([n.similarity for n in queried], abs=1e-5)
                every = copy.nearest(query, POOL, 60)
                if sum(abs(n.similarity - found[-1].similarity) < 1e-6 for n in every) > canonical(found)[1]:
                    continue   # the farthest prompt's labels split by k: which one pgvector keeps is arbitrary
                for model, prior in ((CHEAP, 0.92), (STRONG, 0.94)):
                    assert belief(model=model, prior=prior, neighbours=found).mean == pytest.approx(
                        belief(model=model, prior=prior, neighbours=queried).mean, abs=1e-6)

    loop.run_until_complete(scenario())


def test_one_tenants_labels_never_reach_another_tenants_predictions(loop):
    tenant, _ = factories.make_tenant()
    other, _ = factories.make_tenant("Outsider")

    async def scenario():
        await history(tenant.pk, 20)
        await history(other.pk, 20, seed=1, bad=0.125)    # the same prompts, labelled otherwise
        copy = await labels.load(tenant_id=tenant.pk)
        others = await labels.load(tenant_id=other.pk)
        labels.learned(tenant_id=other.pk, request_id="late", model=CHEAP, good=0.125, vector=unit(0))
        found = await labels.nearest(tenant_id=tenant.pk, vector=unit(0), models=POOL, k=60)
        assert copy.size == others.size == 17 and len(found) == 25
        assert 0.125 not in {n.good for n in found}
        assert {n.good for n in await labels.nearest(tenant_id=other.pk, vector=unit(0), models=POOL, k=60)} == {0.125}

    loop.run_until_complete(scenario())


def test_a_label_this_process_writes_counts_from_the_next_call_without_a_query(loop, monkeypatch):
    tenant, _ = factories.make_tenant()
    unlabelled = near(1000 * 1 + 7, 0.05 + 0.08 * 7)   # r1-7: an answer of CHEAP without a label

    def top(vector):
        return loop.run_until_complete(labels.nearest(tenant_id=tenant.pk, vector=vector, models=POOL, k=1))[0]

    loop.run_until_complete(history(tenant.pk, 10))
    loop.run_until_complete(labels.load(tenant_id=tenant.pk))
    monkeypatch.setattr(store, "nearest", None)         # from here on, a query would fail the call
    assert top(unlabelled).similarity < 0.99

    services.feedback_record(tenant_id=tenant.pk, request_id="r1-7", score=-1.0, model_served=CHEAP)
    assert (top(unlabelled).model, top(unlabelled).good) == (CHEAP, 0.0)
    assert top(unlabelled).similarity == pytest.approx(1.0, abs=1e-6)

    drafted = unit(77)
    loop.run_until_complete(services.remember(tenant_id=tenant.pk, vector=drafted, samples=[
        Sample("judged", CHEAP, "support", 0.3, "judge"), Sample("judged", STRONG, "support")]))
    assert [(n.model, n.good) for n in loop.run_until_complete(
        labels.nearest(tenant_id=tenant.pk, vector=drafted, models=POOL, k=2))][:1] == [(CHEAP, 0.3)]


def test_a_label_written_while_the_copy_loaded_is_not_lost_when_it_arrives(loop, monkeypatch):
    tenant, _ = factories.make_tenant()
    read, written = threading.Event(), threading.Event()
    loaded = labels._load

    def slow_load(tenant_id):
        copy = loaded(tenant_id)     # read before the label below is committed ...
        read.set()
        written.wait(5)
        return copy                  # ... and kept after

    async def scenario():
        await history(tenant.pk, 10)
        monkeypatch.setattr(labels._copies, "_load", slow_load)
        assert len(await labels.nearest(tenant_id=tenant.pk, vector=unit(0), models=POOL, k=60)) == 12  # by query
        await asyncio.to_thread(read.wait, 5)
        await asyncio.to_thread(services.feedback_record, tenant_id=tenant.pk, request_id="r1-7", score=1.0,
                                model_served=CHEAP)
        written.set()
        for _ in range(100):
            await asyncio.sleep(0.02)
            if labels._copy_of(tenant.pk) is not None:
                break
        monkeypatch.setattr(store, "nearest", None)
        found = await labels.nearest(tenant_id=tenant.pk, vector=unit(0), models=POOL, k=60)
        assert len(found) == 13 and (CHEAP, 1.0) in {(n.model, n.good) for n in found if n.similarity > 0.9}

    loop.run_until_complete(scenario())


def test_tenants_beyond_the_memory_budget_are_routed_by_the_query(loop, monkeypatch, settings):
    settings.AKA_ROUTING_MEMORY_MB = 1      # 682 labels; a copy of 300 prompts takes 0.6 MB
    big, small, other = (factories.make_tenant(name)[0] for name in ("Big", "Small", "Other"))
    queried = []

    async def counted(**kw):
        queried.append(kw["tenant_id"])
        return []

    async def scenario():
        await store.insert(tenant_id=big.pk, vector=unit(1), samples=[
            Sample(f"b{i}", CHEAP, "support", 1.0, "feedback") for i in range(700)])
        for tenant in (small, other):
            for i in range(300):
                await store.insert(tenant_id=tenant.pk, vector=unit(i), samples=[
                    Sample(f"s{i}", CHEAP, "support", 1.0, "feedback")])
        assert await labels.load(tenant_id=big.pk) is None
        await labels.load(tenant_id=small.pk)
        monkeypatch.setattr(store, "nearest", counted)
        await labels.nearest(tenant_id=big.pk, vector=unit(1), models=POOL, k=16)
        assert len(await labels.nearest(tenant_id=small.pk, vector=unit(1), models=POOL, k=16)) == 16
        await labels.load(tenant_id=other.pk)         # no room for both: the least recently routed goes
        await labels.nearest(tenant_id=small.pk, vector=unit(1), models=POOL, k=16)
        assert queried == [big.pk, small.pk]
        await labels._copies._loading[small.pk]     # the load that call started...
        assert labels._copy_of(small.pk) is not None  # ...puts its copy back in its place

    loop.run_until_complete(scenario())


def test_the_pgvector_query_is_one_statement_outside_a_transaction(loop, tmp_path):
    """In a pool connection's default mode it would be BEGIN, the query and, when the
    connection goes back, ROLLBACK: three round trips for one read. Seen in libpq's trace
    of every pool connection."""
    tenant, _ = factories.make_tenant()
    trace = tmp_path / "libpq.trace"

    async def scenario(out: int):
        await history(tenant.pk, 4)
        pool = await pg.pool()
        await pool.wait()   # every connection made, so that every one is traced
        idle = [await pool.getconn() for _ in range(pool.get_stats()["pool_available"])]
        for conn in idle:
            await pg.with_vectors(conn)   # registering the types would be a transaction of its own
            conn.pgconn.trace(out)
            await pool.putconn(conn)
        try:
            return await store.nearest(tenant_id=tenant.pk, vector=near(1000, 0.05), models=POOL, k=3)
        finally:
            for conn in idle:
                conn.pgconn.untrace()

    with open(trace, "w") as out:
        assert len(loop.run_until_complete(scenario(out.fileno()))) == 3
    sent = trace.read_text()   # what the client sent and the server answered, BEGIN or not
    assert "routing_sample" in sent and "BEGIN" not in sent and "ROLLBACK" not in sent, sent[:2000]
