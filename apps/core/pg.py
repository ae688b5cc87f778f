"""The gateway's own async PostgreSQL pool (psycopg 3), one per event loop.

Hot-path database work (ledger rows, cache lookups and writes) runs here, on the event
loop, instead of through Django's ORM, which would hop to a thread for every query.
"""

import asyncio

from django.conf import settings
from django.db import connections
from pgvector.psycopg import register_vector_async
from psycopg.conninfo import make_conninfo
from psycopg_pool import AsyncConnectionPool

from .lifecycle import on_shutdown

_pools: dict[int, AsyncConnectionPool] = {}
_opening: dict[int, asyncio.Lock] = {}


def conninfo() -> str:
    params = connections["default"].get_connection_params()
    for django_only in ("cursor_factory", "context", "prepare_threshold"):
        params.pop(django_only, None)
    return make_conninfo(**{k: v for k, v in params.items() if v not in (None, "")})


def session_settings() -> list[str]:
    """What every pool connection sets (bench/cache_scale measures lookups under the same)."""
    return [
        # Commits do not wait for the WAL flush: a Postgres crash (not an app crash) could
        # lose the last fraction of a second of writes; every write here is replayable.
        "SET synchronous_commit = off",
        # Filtered vector search (one tenant, scope and context) keeps scanning the HNSW
        # index until enough rows pass the filter. Relaxed order: the hit rule re-sorts the
        # candidates itself, and at 1M entries strict order cost a large tenant p99 63 ms
        # against 8 ms (bench/cache_scale, when partitions were by tenant alone).
        "SET hnsw.iterative_scan = relaxed_order",
        f"SET hnsw.ef_search = {int(settings.AKA_CACHE_EF_SEARCH)}",
        # Pages are in shared buffers or on SSD: a random read costs about what a sequential
        # one does. At the default 4.0 the planner kept scanning a context sequentially up to
        # ~2,400 entries, though the HNSW index was faster from ~1,000 (at 1,600: 1.12 ms
        # against 0.52 ms); at 1.1 it takes the index from ~500, where both cost ~0.6 ms.
        "SET random_page_cost = 1.1",
        # psycopg prepares a statement after a few runs, and Postgres then reuses a generic
        # plan: one plan for every tenant, which for a large tenant is a full sort instead
        # of the HNSW index (117 ms instead of 4 ms for a 120k-entry tenant, bench/cache_scale
        # when partitions were by tenant alone).
        "SET plan_cache_mode = force_custom_plan",
    ]


async def _configure(conn) -> None:
    for statement in session_settings():
        await conn.execute(statement)
    await conn.commit()


async def pool() -> AsyncConnectionPool:
    loop_id = id(asyncio.get_running_loop())
    found = _pools.get(loop_id)
    if found is not None:
        return found
    async with _opening.setdefault(loop_id, asyncio.Lock()):
        if loop_id not in _pools:
            opened = AsyncConnectionPool(conninfo(), min_size=2, max_size=settings.AKA_PG_POOL_SIZE, open=False,
                                         configure=_configure)
            await opened.open()
            _pools[loop_id] = opened
    return _pools[loop_id]


async def with_vectors(conn) -> None:
    """Registers pgvector's types on a pool connection, once per connection."""
    if not getattr(conn, "_aka_vector", False):
        await register_vector_async(conn)
        conn._aka_vector = True


@on_shutdown
async def close_pools() -> None:
    for opened in list(_pools.values()):
        await opened.close()
    _pools.clear()
