"""Writing ledger rows from the gateway without leaving the event loop.

Calls hand their row to the process's LedgerWriter once the client has its response,
and await it. The writer inserts whatever has queued up in one pipelined batch on the
gateway's psycopg pool (group commit): one round trip for many concurrent calls, no
thread hop per call. A row is
keyed by its request id with ON CONFLICT DO NOTHING, so a retried write never
duplicates it.
"""

import asyncio
import logging

from apps.core import pg
from apps.core.lifecycle import on_shutdown
from apps.core.loops import PerLoop

from .models import CallRecord

log = logging.getLogger(__name__)

COLUMNS = [f.column for f in CallRecord._meta.concrete_fields if f.column not in ("id", "created_at")]
FIELDS = {f.column: f.attname for f in CallRecord._meta.concrete_fields}
DEFAULTS = {f.column: f.get_default() for f in CallRecord._meta.concrete_fields}
INSERT_SQL = (
    f"INSERT INTO {CallRecord._meta.db_table} ({', '.join(COLUMNS)}) "
    f"VALUES ({', '.join(['%s'] * len(COLUMNS))}) ON CONFLICT (request_id) DO NOTHING"
)
WRITE_ATTEMPTS = 5


class LedgerWriter:
    def __init__(self) -> None:
        self._queue: list[tuple[dict, asyncio.Future]] = []
        self._task: asyncio.Task | None = None

    async def record(self, row: dict) -> None:
        """Queues a ledger row and returns once it is committed."""
        future = asyncio.get_running_loop().create_future()
        self._queue.append((row, future))
        # The writer task drains the queue and exits; rows queued while it is inserting
        # form the next batch.
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        await asyncio.shield(future)

    async def _run(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            error = await self._insert([row for row, _ in batch])
            for _, future in batch:
                if future.done():
                    continue
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(error)

    async def _insert(self, rows: list[dict]) -> Exception | None:
        values = [tuple(row.get(FIELDS[c], DEFAULTS[c]) for c in COLUMNS) for row in rows]
        for attempt in range(WRITE_ATTEMPTS):
            try:
                async with (await pg.pool()).connection() as conn, conn.cursor() as cur:
                    await cur.executemany(INSERT_SQL, values)
                return None
            except Exception as exc:  # the database is the one thing we must not give up on quickly
                log.warning("ledger write failed (attempt %d): %s", attempt + 1, exc)
                if attempt + 1 == WRITE_ATTEMPTS:
                    log.error("ledger rows NOT written, kept here for replay: %r", rows)
                    return exc
                await asyncio.sleep(0.05 * 2**attempt)
        return None

    async def close(self) -> None:
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)


writer = PerLoop(LedgerWriter)


@on_shutdown
async def close_writers() -> None:
    for found in writer.drain():
        await found.close()
