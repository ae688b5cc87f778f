"""Vectors stay inline (0006_embedding_inline): a lookup's distances read the heap page, and
the answer is the column TOAST moves out of line."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.db import connection

from apps.cache import store
from tests import factories
from tests.cache.helpers import run, unit
from tests.migrations import migrate_to, migrate_to_latest

BEFORE = ("cache", "0005_entry_demotion")
WORDS = "your card pin can be reset in the app under security or at any cash machine of our network".split()
# English-like text of ~1,500 characters: compressed it is smaller than the vector (so before
# 0006 the vector was the column moved out of line) but still too big for the row to stay inline.
ANSWER = " ".join(np.random.default_rng(7).choice(WORDS, size=300))


async def write(tenant_id: int, n: int) -> int:
    return await store.insert(
        tenant_id=tenant_id, scope="", context_key="ctx", exact_key=f"key{n}", api_key_id=None, prompt_text=f"q{n}",
        vector=unit(n), neighbour_stat=0.5, response={"content": ANSWER, "finish_reason": "stop"}, model="m",
        ttl=timedelta(days=1), now=datetime.now(UTC), generation=0)


def storage() -> dict[str, str]:
    with connection.cursor() as cur:
        cur.execute("SELECT attrelid::regclass::text, attstorage FROM pg_attribute WHERE attname = 'embedding'"
                    " AND attrelid IN (SELECT 'cache_entry'::regclass UNION ALL"
                    "                  SELECT inhrelid FROM pg_inherits WHERE inhparent = 'cache_entry'::regclass)")
        return dict(cur.fetchall())


def out_of_line(tenant_id: int) -> list[tuple[bool, bool]]:
    """(vector, answer) stored out of line, per entry of the tenant."""
    with connection.cursor() as cur:
        cur.execute("SELECT pg_column_toast_chunk_id(embedding) IS NOT NULL, pg_column_toast_chunk_id(response) IS NOT NULL"
                    " FROM cache_entry WHERE tenant_id = %s ORDER BY id", [tenant_id])
        return cur.fetchall()


@pytest.mark.django_db
def test_the_parent_and_all_64_partitions_store_the_vector_plain():
    found = storage()
    assert len(found) == 65
    assert set(found.values()) == {"p"}


@pytest.mark.django_db(transaction=True)
def test_a_wide_entry_keeps_its_vector_inline_and_its_answer_out_of_line():
    tenant, _ = factories.make_tenant()
    run(write(tenant.pk, 1))
    assert out_of_line(tenant.pk) == [(False, True)]


@pytest.mark.django_db(transaction=True)
def test_the_migration_moves_existing_vectors_inline_and_lookups_return_the_same_hits():
    tenant, _ = factories.make_tenant()

    async def lookup():
        rows = await store.nearest(tenant_id=tenant.pk, scope="", context_key="ctx", vector=unit(2), k=20,
                                   ttl=timedelta(days=1))
        return [(r.id, round(r.similarity, 6), r.embedding.tobytes(),
                 (await store.answer(tenant_id=tenant.pk, scope="", context_key="ctx", entry_id=r.id,
                                     ttl=timedelta(days=1))).response["content"])
                for r in rows]

    migrate_to(BEFORE)
    try:
        assert set(storage().values()) == {"e"}
        # Today's writes check the tenant's cache generation, a column added after BEFORE.
        with connection.cursor() as cur:
            cur.execute("ALTER TABLE cache_cachesettings ADD COLUMN generation bigint NOT NULL DEFAULT 0")
        ids = [run(write(tenant.pk, n)) for n in range(3)]
        assert out_of_line(tenant.pk) == [(True, False)] * 3
        before = run(lookup())
    finally:
        with connection.cursor() as cur:
            cur.execute("ALTER TABLE cache_cachesettings DROP COLUMN IF EXISTS generation")
        migrate_to_latest()
    assert out_of_line(tenant.pk) == [(False, True)] * 3
    after = run(lookup())
    assert after == before
    assert [hit[0] for hit in after][0] == ids[2]
    assert after[0][1] == pytest.approx(1.0)
