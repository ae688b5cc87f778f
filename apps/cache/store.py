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

from .decision import COHERENCE_K

# The candidates carry what the first stage decides on, not their answers: reading 20
# answers (each a TOAST fetch and a decompression, then parsed) to serve one of them was
# most of a lookup's database time at real answer sizes. Only the nearest candidate's
# answer is read (the one served most often; ANSWER fetches any other),
# in the same statement: one round trip to the server instead of two. The window picks
# it after the index scan, whose relaxed order is not exact; the other rows' answers stay
# unread TOAST pointers. NEAREST is ordered by the selected distance, so a sequential scan
# computes it once per row, not twice (1.1 against 2.6 ms at 2,401 entries); the HNSW
# index serves the ORDER BY either way. Only the COHERENCE_K nearest carry their vectors:
# the first stage and the verifier compare those alone (decision.adjusted_similarities,
# verifier.neighbourhood), and the others' would be half of the rows' bytes to send and
# parse; their similarities and radii still come. The same ones carry their prompts: the
# verifier reads the texts of the first stage's best few among them (verifier.CANDIDATES).
NEAREST = """
SELECT id, embedding <=> %(vec)s AS distance, embedding, neighbour_stat, response, model, prompt_text FROM cache_entry
WHERE tenant_id = %(tenant)s AND scope = %(scope)s AND context_key = %(context)s AND expires_at > now()
  AND created_at > now() - %(ttl)s AND demoted_at IS NULL
ORDER BY distance LIMIT %(k)s
"""
SEMANTIC = f"""
SELECT id, distance, CASE WHEN rank <= {COHERENCE_K} THEN embedding END, neighbour_stat,
       CASE WHEN rank = 1 THEN response END, CASE WHEN rank = 1 THEN model END,
       CASE WHEN rank <= {COHERENCE_K} THEN prompt_text END
FROM (SELECT *, row_number() OVER (ORDER BY distance, id) AS rank FROM ({NEAREST}) AS candidates) AS ranked
ORDER BY distance, id
"""
# The same conditions again: an entry purged, expired or demoted since the candidates were
# read is not served. Each read also refuses an entry older than the tenant's TTL now
# (`ttl`): expires_at is the TTL when it was written, and a lowered one applies at once.
ANSWER = """
SELECT id, response, model FROM cache_entry
WHERE tenant_id = %(tenant)s AND context_key = %(context)s AND id = %(id)s AND scope = %(scope)s
  AND expires_at > now() AND created_at > now() - %(ttl)s AND demoted_at IS NULL
"""
EXACT = """
SELECT id, response, model FROM cache_entry
WHERE tenant_id = %(tenant)s AND context_key = %(context)s AND exact_key = %(exact)s AND expires_at > now()
  AND created_at > now() - %(ttl)s
"""
# Only while the tenant's cache is on and at the generation the call looked it up in (none
# stored before its first change: 0). FOR SHARE orders it against a purge, which moves the
# generation on under a row lock before it deletes: a purge that came first refuses the
# write; one that comes after waits for it, and then deletes what it wrote.
#
# A tenant that never changed its settings has no row to lock, and its first purge creates
# one: a write would read "no row" and store its answer after the purge's delete. So a write
# at generation 0 first takes the tenant's generation lock shared, in a statement of its own
# (WRITE_LOCK), and every settings change, a purge's included, takes it exclusively before
# anything else (PURGE_LOCK, services.cache_settings_update): a purge in progress makes the
# write wait and then read its generation; a write in progress makes the purge wait and then
# delete what it wrote. A write at a later generation has a row, and FOR SHARE suffices.
_GENERATION_LOCK = "hashtextextended('aka-cache-generation:' || %(tenant)s::text, 0)"
WRITE_LOCK = f"SELECT pg_advisory_xact_lock_shared({_GENERATION_LOCK})"
PURGE_LOCK = f"SELECT pg_advisory_xact_lock({_GENERATION_LOCK})"
INSERT = """
INSERT INTO cache_entry (tenant_id, scope, context_key, exact_key, api_key_id, prompt_text, embedding,
                         neighbour_stat, response, model, expires_at)
SELECT %(tenant)s, %(scope)s, %(context)s, %(exact)s, %(api_key)s, %(prompt)s, %(vec)s, %(stat)s, %(response)s,
       %(model)s, %(expires)s
WHERE COALESCE((SELECT enabled AND generation = %(generation)s FROM cache_cachesettings
                WHERE tenant_id = %(tenant)s FOR SHARE), %(generation)s = 0)
ON CONFLICT (tenant_id, context_key, exact_key) DO UPDATE
    SET response = EXCLUDED.response, model = EXCLUDED.model, expires_at = EXCLUDED.expires_at, created_at = now(),
        api_key_id = EXCLUDED.api_key_id
RETURNING id
"""
# A rewritten entry belongs to the key that wrote its answer (purge by key removes what that
# key wrote). A demotion stays: feedback said this prompt's answer was wrong for a
# neighbour's query, and a fresh answer to the same prompt is no likelier to fit it.
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
class Entry:
    """What serving an entry takes: its answer."""

    id: int
    response: dict
    model: str


@dataclass(frozen=True, slots=True)
class Neighbour:
    """A semantic candidate, as the first stage sees it; the nearest one (the first) also
    carries its entry, read in the same statement. Beyond the COHERENCE_K nearest, no
    embedding and no prompt (SEMANTIC)."""

    id: int
    similarity: float
    embedding: np.ndarray | None
    neighbour_stat: float | None
    prompt_text: str | None = None
    entry: Entry | None = None


async def _connection():
    return (await pg.pool()).connection()


async def _entry(statement: str, params: dict) -> Entry | None:
    async with pg.reading() as conn:
        cur = await conn.execute(statement, params)
        found = await cur.fetchone()
    return None if found is None else Entry(*found)


async def exact(*, tenant_id: int, context_key: str, exact_key: str, ttl: timedelta) -> Entry | None:
    return await _entry(EXACT, {"tenant": tenant_id, "context": context_key, "exact": exact_key, "ttl": ttl})


async def answer(*, tenant_id: int, scope: str, context_key: str, entry_id: int, ttl: timedelta) -> Entry | None:
    """The chosen candidate's answer; None if it was purged, expired or demoted meanwhile."""
    return await _entry(ANSWER, {"tenant": tenant_id, "scope": scope, "context": context_key, "id": entry_id,
                                 "ttl": ttl})


async def nearest(*, tenant_id: int, scope: str, context_key: str, vector: np.ndarray, k: int,
                  ttl: timedelta) -> list[Neighbour]:
    """The k entries nearest to `vector`, nearest first; the first carries its Entry."""
    async with pg.reading() as conn:
        await pg.with_vectors(conn)
        # Binary results: 20 candidate vectors parse far faster than from text.
        cur = await conn.execute(SEMANTIC, {"tenant": tenant_id, "scope": scope, "context": context_key,
                                            "vec": vector, "k": k, "ttl": ttl}, binary=True)
        rows = await cur.fetchall()
    return [Neighbour(id=r[0], similarity=1.0 - r[1], embedding=None if r[2] is None else r[2].to_numpy(),
                      neighbour_stat=r[3], prompt_text=r[6],
                      entry=None if r[4] is None else Entry(r[0], r[4], r[5]))
            for r in rows]


async def insert(*, tenant_id: int, scope: str, context_key: str, exact_key: str, api_key_id: str | None,
                 prompt_text: str, vector: np.ndarray, neighbour_stat: float | None, response: dict, model: str,
                 ttl: timedelta, now: datetime, generation: int, neighbours: dict[int, float] | None = None,
                 update_rate: float = 0.0) -> int | None:
    """Writes an entry and, in the same transaction, moves the statistic of each of its
    neighbours ({entry id: similarity to the new entry}, all of the same tenant and context).
    None, and nothing written, when the tenant's cache was purged or turned off since
    `generation` was read (INSERT)."""
    async with await _connection() as conn:
        await pg.with_vectors(conn)
        if generation == 0:
            await conn.execute(WRITE_LOCK, {"tenant": tenant_id})
        cur = await conn.execute(INSERT, {
            "tenant": tenant_id, "scope": scope, "context": context_key, "exact": exact_key, "api_key": api_key_id,
            "prompt": prompt_text.replace("\x00", ""), "vec": vector, "stat": neighbour_stat,
            "response": Jsonb(response, dumps=_dumps), "model": model, "expires": now + ttl,
            "generation": generation,
        })
        found = await cur.fetchone()
        if found and neighbours and update_rate:
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
