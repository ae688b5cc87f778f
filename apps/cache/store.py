"""The cache table's SQL, run on the gateway's async pool. Every statement takes the
tenant and the context key as required arguments and filters on both: there is no query
here that could read or touch another tenant's entries, and each one is pruned to the
single partition that holds its (tenant, context)."""

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import orjson
from psycopg.types.json import Jsonb

from apps.core import pg

# Ordered by the selected distance, so a sequential scan computes it once per row, not
# twice (1.1 against 2.6 ms at 2,401 entries); the HNSW index serves the ORDER BY either
# way. Answers come with the candidates: fetching only the chosen one took an extra query
# and saved nothing (1.02 against 1.04 ms at 2,401 entries; 20 answers serialize in 0.25 ms).
SEMANTIC = """
SELECT id, embedding <=> %(vec)s AS distance, embedding, neighbour_stat, response, model, prompt_text FROM cache_entry
WHERE tenant_id = %(tenant)s AND scope = %(scope)s AND context_key = %(context)s AND expires_at > now()
  AND demoted_at IS NULL
ORDER BY distance LIMIT %(k)s
"""
EXACT = """
SELECT id, response, model, prompt_text FROM cache_entry
WHERE tenant_id = %(tenant)s AND context_key = %(context)s AND exact_key = %(exact)s AND expires_at > now()
"""
INSERT = """
INSERT INTO cache_entry (tenant_id, scope, context_key, exact_key, api_key_id, prompt_text, embedding,
                         neighbour_stat, response, model, expires_at)
VALUES (%(tenant)s, %(scope)s, %(context)s, %(exact)s, %(api_key)s, %(prompt)s, %(vec)s, %(stat)s, %(response)s,
        %(model)s, %(expires)s)
ON CONFLICT (tenant_id, context_key, exact_key) DO UPDATE
    SET response = EXCLUDED.response, model = EXCLUDED.model, expires_at = EXCLUDED.expires_at, created_at = now()
RETURNING id
"""
# decision.update_statistic, applied to the current value in one statement, so that
# concurrent writers near the same entry never lose each other's update.
NEIGHBOUR_STAT = """
UPDATE cache_entry SET neighbour_stat = neighbour_stat + (%(sim)s - neighbour_stat) * %(rate)s
WHERE tenant_id = %(tenant)s AND context_key = %(context)s AND id = %(id)s AND neighbour_stat < %(sim)s
"""
# The ledger knows a hit's entry id, not its context, so this one reads every partition's
# primary key for the tenant (64 index probes): rare, and off the hot path.
DEMOTE = """
UPDATE cache_entry SET demoted_at = now() WHERE tenant_id = %(tenant)s AND id = %(id)s AND demoted_at IS NULL
"""
HITS = """
UPDATE cache_entry SET hit_count = hit_count + %(n)s, last_hit_at = now()
WHERE tenant_id = %(tenant)s AND context_key = %(context)s AND id = %(id)s
"""


@dataclass(frozen=True, slots=True)
class Row:
    id: int
    similarity: float
    embedding: np.ndarray | None
    neighbour_stat: float | None
    response: dict
    model: str
    prompt_text: str


async def _connection():
    return (await pg.pool()).connection()


async def exact(*, tenant_id: int, context_key: str, exact_key: str) -> Row | None:
    async with await _connection() as conn:
        cur = await conn.execute(EXACT, {"tenant": tenant_id, "context": context_key, "exact": exact_key})
        found = await cur.fetchone()
    if found is None:
        return None
    return Row(id=found[0], similarity=1.0, embedding=None, neighbour_stat=None, response=found[1], model=found[2],
               prompt_text=found[3])


async def nearest(*, tenant_id: int, scope: str, context_key: str, vector: np.ndarray, k: int) -> list[Row]:
    async with await _connection() as conn:
        await pg.with_vectors(conn)
        # Binary results: 20 candidate vectors parse far faster than from text.
        cur = await conn.execute(SEMANTIC, {"tenant": tenant_id, "scope": scope, "context": context_key,
                                            "vec": vector, "k": k}, binary=True)
        rows = await cur.fetchall()
    return [Row(id=r[0], similarity=1.0 - r[1], embedding=r[2].to_numpy().astype(np.float32), neighbour_stat=r[3],
                response=r[4], model=r[5], prompt_text=r[6]) for r in rows]


async def insert(*, tenant_id: int, scope: str, context_key: str, exact_key: str, api_key_id: str | None,
                 prompt_text: str, vector: np.ndarray, neighbour_stat: float | None, response: dict, model: str,
                 ttl: timedelta, now: datetime, neighbours: dict[int, float] | None = None,
                 update_rate: float = 0.0) -> int | None:
    """Writes an entry and, in the same transaction, moves the statistic of each of its
    neighbours ({entry id: similarity to the new entry}, all of the same tenant and context)."""
    async with await _connection() as conn:
        await pg.with_vectors(conn)
        cur = await conn.execute(INSERT, {
            "tenant": tenant_id, "scope": scope, "context": context_key, "exact": exact_key, "api_key": api_key_id,
            "prompt": prompt_text.replace("\x00", ""), "vec": vector, "stat": neighbour_stat,
            "response": Jsonb(response, dumps=_dumps), "model": model, "expires": now + ttl,
        })
        found = await cur.fetchone()
        if neighbours and update_rate:
            async with conn.cursor() as batch:
                await batch.executemany(NEIGHBOUR_STAT, [
                    {"tenant": tenant_id, "context": context_key, "id": entry_id, "sim": similarity,
                     "rate": update_rate}
                    for entry_id, similarity in sorted(neighbours.items())])
    return found[0] if found else None


async def add_hits(counts: dict[tuple[int, str, int], int]) -> None:
    """Adds hit counts, {(tenant id, context key, entry id): hits}, in one pipelined batch."""
    async with await _connection() as conn, conn.cursor() as cur:
        await cur.executemany(HITS, [{"tenant": t, "context": c, "id": e, "n": n}
                                     for (t, c, e), n in sorted(counts.items())])


def _dumps(value) -> str:
    return orjson.dumps(value).decode()


async def demote(*, tenant_id: int, entry_id: int) -> bool:
    async with await _connection() as conn:
        cur = await conn.execute(DEMOTE, {"tenant": tenant_id, "id": entry_id})
        return cur.rowcount > 0
