"""The gateway's own async PostgreSQL pool (psycopg 3), one per event loop.

Hot-path database work (ledger rows, cache lookups and writes) runs here, on the event
loop, instead of through Django's ORM, which would hop to a thread for every query.
"""

import asyncio
import logging
import time
from contextlib import asynccontextmanager

import psycopg
from django.conf import settings
from django.db import DatabaseError, connections
from pgvector.psycopg import register_vector_async
from psycopg.conninfo import make_conninfo
from psycopg_pool import AsyncConnectionPool

from .errors import ApiError
from .lifecycle import on_shutdown

log = logging.getLogger(__name__)

# Seconds a call waits for a pool connection (psycopg's default is 30): with the
# database down, a call gets its 503 after this long, not half a minute.
POOL_WAIT = 5.0
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
                                         configure=_configure, timeout=POOL_WAIT)
            await opened.open()
            _pools[loop_id] = opened
    return _pools[loop_id]


@asynccontextmanager
async def reading():
    """A pool connection for single read statements, outside a transaction: in a pool
    connection's default mode every statement is preceded by a BEGIN and the connection's
    return by a ROLLBACK, three round trips to the server instead of one. The mode is set
    back before the connection returns to the pool, for those that write in transactions
    (the ledger's SET LOCAL and batch share one)."""
    async with (await pool()).connection() as conn:
        await conn.set_autocommit(True)
        try:
            yield conn
        finally:
            if not conn.broken:   # else setting it would hide the error that broke it
                await conn.set_autocommit(False)


async def with_vectors(conn) -> None:
    """Registers pgvector's types on a pool connection, once per connection."""
    if not getattr(conn, "_aka_vector", False):
        await register_vector_async(conn)
        conn._aka_vector = True


# --- Outages ---------------------------------------------------------------------------
# Seconds between checks of a database found down; and what a check may wait for.
PROBE_EVERY = 0.5
PROBE_TIMEOUT = 5  # whole seconds (libpq); a loaded machine may take a while to connect


def unavailable() -> ApiError:
    return ApiError(503, "The gateway cannot reach its database right now; nothing was charged. Retry shortly.",
                    code="database_unavailable", headers={"retry-after": "1"})


def unreachable(error: BaseException) -> bool:
    """Whether `error` says the database cannot be reached (down, restarting, out of
    connections), as opposed to a bad statement or bad data."""
    if isinstance(error, psycopg.OperationalError):  # the pool's PoolTimeout is one too
        return True
    # Django's wrapper of the same errors, from the ORM's snapshots.
    return isinstance(error, DatabaseError) and isinstance(error.__cause__, psycopg.OperationalError)


class Outage:
    """This process's view of whether PostgreSQL can be reached. Database work that finds
    it unreachable reports it; until a probe succeeds again, `check` refuses new calls with
    a 503 at once, whatever the per-process snapshots still know, so no call is answered
    that the ledger cannot take (a call already under way is answered and its row
    spooled). One probe at a time, at most every PROBE_EVERY seconds."""

    def __init__(self) -> None:
        self.since: float | None = None
        self._probed_at = float("-inf")
        self._probing = False

    def report(self) -> None:
        if self.since is None:
            self.since = time.monotonic()
            log.error("ALERT database unreachable: new calls get 503 until it answers again")

    async def check(self) -> None:
        if self.since is None:
            return
        if not self._probing and time.monotonic() - self._probed_at >= PROBE_EVERY:
            self._probing = True
            try:
                answers = await _answers()
            finally:
                self._probing, self._probed_at = False, time.monotonic()
            if answers:
                log.warning("database reachable again after %.1f s", time.monotonic() - self.since)
                self.since = None
                return
        raise unavailable()


async def _answers() -> bool:
    """A new connection, not one of the pool's: those may be the broken ones of before,
    and the pool waits longer and longer between its own attempts to replace them. Once
    the database answers, this pool drops its broken connections (the ORM's pool checks
    each connection it hands out: akaplatform/settings.py)."""
    try:
        conn = await psycopg.AsyncConnection.connect(conninfo(), connect_timeout=PROBE_TIMEOUT)
        async with conn:
            await conn.execute("SELECT 1")
    except Exception:
        return False
    await (await pool()).check()
    return True


outage = Outage()


@on_shutdown
async def close_pools() -> None:
    for opened in list(_pools.values()):
        await opened.close()
    _pools.clear()
