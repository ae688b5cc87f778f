"""Moving the cache table to HASH (tenant_id, context_key) partitions keeps every entry and id."""

import pytest
from django.db import connection

from tests import factories
from tests.migrations import migrate_to, migrate_to_latest

BEFORE = ("cache", "0001_partitioned_cache")
VECTOR = "[" + ",".join(["0.05"] * 384) + "]"


def partition_key() -> str:
    with connection.cursor() as cur:
        cur.execute("SELECT pg_get_partkeydef('cache_entry'::regclass)")
        return cur.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_entries_and_ids_survive_the_move_and_new_ids_continue_after_them():
    tenant, _ = factories.make_tenant()
    migrate_to(BEFORE)
    try:
        assert partition_key() == "HASH (tenant_id)"
        with connection.cursor() as cur:
            for n in range(5):
                cur.execute(
                    "INSERT INTO cache_entry (tenant_id, context_key, exact_key, prompt_text, embedding, response,"
                    " model, expires_at, hit_count) VALUES (%s, %s, %s, %s, %s::vector, '{}', 'm',"
                    " now() + interval '1 day', %s)",
                    [tenant.pk, f"ctx{n % 2}", f"key{n}", f"prompt {n}", VECTOR, n])
            cur.execute("SELECT id, context_key, prompt_text, hit_count FROM cache_entry ORDER BY id")
            before = cur.fetchall()
    finally:
        migrate_to_latest()
    assert partition_key() == "HASH (tenant_id, context_key)"
    with connection.cursor() as cur:
        cur.execute("SELECT id, context_key, prompt_text, hit_count FROM cache_entry ORDER BY id")
        assert cur.fetchall() == before
        cur.execute(
            "INSERT INTO cache_entry (tenant_id, context_key, exact_key, prompt_text, embedding, response, model,"
            " expires_at) VALUES (%s, 'ctx0', 'new', 'new', %s::vector, '{}', 'm', now()) RETURNING id",
            [tenant.pk, VECTOR])
        assert cur.fetchone()[0] > before[-1][0]
        cur.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = 'cache_entry'::regclass")
        assert cur.fetchone()[0] == 64
