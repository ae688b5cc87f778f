"""Writing ledger rows from the gateway without leaving the event loop, and never losing one.

Calls hand their row to the process's LedgerWriter once the client has its response.
The writer inserts whatever has queued up in one pipelined batch on the gateway's
psycopg pool (group commit): one round trip for many concurrent calls, no thread hop
per call. A row is unique by (tenant, request id, created_at), the ledger's partition
key included (apps.billing.partitions), and inserted with ON CONFLICT DO NOTHING; its
created_at is fixed once, when the row is queued, and travels with it into the spool,
so a retried or replayed write meets the same key and never duplicates the row.

One bad row must not cost anyone else theirs: every value is normalised to what its
column holds first (lengths, NUL bytes, integer ranges); if PostgreSQL still refuses
a batch, its rows are written one by one; a row it refuses on its own, or rows it
cannot take because it is down, go to the durable local spool (apps.billing.spool),
which is replayed. A row is only ever dropped if the local disk fails too.
"""

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from django.conf import settings
from django.db import models

from apps.core import metrics, pg
from apps.core.lifecycle import on_shutdown, on_startup
from apps.core.loops import PerLoop

from . import journal, spool
from .models import CallRecord

log = logging.getLogger(__name__)

_FIELDS = [f for f in CallRecord._meta.concrete_fields if f.column not in ("id", "created_at")]
COLUMNS = [f.column for f in _FIELDS] + ["created_at"]
DECIMAL_COLUMNS = {f.column for f in _FIELDS if isinstance(f, models.DecimalField)}
INSERT_SQL = (
    f"INSERT INTO {CallRecord._meta.db_table} ({', '.join(COLUMNS)}) "
    f"VALUES ({', '.join(['%s'] * len(COLUMNS))}) ON CONFLICT (tenant_id, request_id, created_at) DO NOTHING"
)
# Attempts against a database that is failing (not refusing) before rows are spooled.
WRITE_ATTEMPTS = 4
# Seconds to wait for a pool connection: a database that is down should spool rows soon.
CONNECT_TIMEOUT = 5.0
# Errors that say "this data", not "this database": retrying the same rows cannot help.
REFUSED = (psycopg.DataError, psycopg.IntegrityError, psycopg.ProgrammingError, ValueError, TypeError)
_INT_RANGES = {
    models.PositiveSmallIntegerField: (0, 32767),
    models.PositiveIntegerField: (0, 2**31 - 1),
    models.BigIntegerField: (-(2**63), 2**63 - 1),
}


def _text(value: str, limit: int | None) -> str:
    # PostgreSQL text cannot hold NUL; lone surrogates cannot be encoded to UTF-8.
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            value = value.encode(errors="replace").decode()
    return value[:limit] if limit else value


# Per column, worked out once: where a row may name it, its default, its text length and
# its integer range.
_RULES = [(f.attname, f.column, f.get_default, f.max_length, _INT_RANGES.get(type(f))) for f in _FIELDS]


def normalise(row: dict) -> dict:
    """The row as its columns can hold it: text without NUL and cut to length, integers
    clamped to their column's range, missing values at their defaults, and its created_at
    fixed (now, unless the row has one): every later attempt to write it uses this one."""
    out = {"created_at": row.get("created_at") or datetime.now(UTC)}
    for attname, column, default, max_length, span in _RULES:
        if attname in row:
            value = row[attname]
        elif column in row:
            value = row[column]
        else:
            value = default()
        if isinstance(value, str):
            value = _text(value, max_length)
        elif span is not None and isinstance(value, int) and not isinstance(value, bool):
            value = min(max(value, span[0]), span[1])
        out[column] = value
    return out


async def _insert(rows: list[dict]) -> None:
    async with (await pg.pool()).connection(timeout=CONNECT_TIMEOUT) as conn, conn.cursor() as cur:
        # The pool commits asynchronously for cache writes; billing rows wait for the WAL
        # flush. Batched, so one flush covers every call in the batch.
        await cur.execute("SET LOCAL synchronous_commit = on")
        await cur.executemany(INSERT_SQL, [tuple(row[c] for c in COLUMNS) for row in rows])


async def _insert_each(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """Inserts rows one at a time; returns (refused rows, rows the database was unable to take)."""
    refused, unavailable = [], []
    for row in rows:
        try:
            await _insert([row])
        except REFUSED as exc:
            log.error("ledger row %s refused by the database: %s", row.get("request_id"), exc)
            refused.append(row)
        except Exception:
            unavailable.append(row)
    return refused, unavailable


async def _write(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """Inserts rows as one batch, or one by one if the database refuses the batch; returns
    (rows it refused, rows it was unable to take)."""
    try:
        await _insert(rows)
        return [], []
    except REFUSED as exc:
        log.warning("ledger batch of %d refused (%s); writing its rows one by one", len(rows), exc)
        return await _insert_each(rows)
    except Exception as exc:  # the database is down or overloaded
        log.warning("ledger write of %d rows failed: %s", len(rows), exc)
        return [], rows


async def store(rows: list[dict]) -> None:
    """Writes normalised rows to the database, or durably to the spool. Raises only if
    the spool itself cannot be written."""
    for attempt in range(WRITE_ATTEMPTS):
        refused, rows = await _write(rows)
        _spool(spool.REJECTED, refused)
        if not rows:
            return
        if attempt + 1 < WRITE_ATTEMPTS:
            await asyncio.sleep(0.05 * 2**attempt)
    _spool(spool.PENDING, rows)


def _spool(kind: str, rows: list[dict]) -> None:
    if not rows:
        return
    path = spool.write(kind, rows)
    metrics.LEDGER_SPOOLED.labels(kind).inc(len(rows))
    if kind == spool.REJECTED:
        log.error("ALERT ledger: %d row(s) refused by the database, kept in %s for a person to fix and replay",
                  len(rows), path)
    else:
        log.error("ALERT ledger: database unavailable, %d row(s) spooled to %s; replaying", len(rows), path)
        pg.outage.report()
        replayer().wake()


async def replay(kind: str = spool.PENDING) -> int:
    """Moves spooled rows of `kind` into the database; returns how many files are left.
    Rows the database refuses move to `rejected/`; a database still down leaves the file,
    and so does a disk that cannot take what the file's replay writes (the files after it
    are replayed all the same)."""
    left = 0
    for path in spool.files(kind):
        claim = spool.Claim.take(path)
        if claim is None:
            left += 1
            continue
        try:
            if not path.exists():  # replayed by another process while we waited
                continue
            if await _replay_file(path, kind):
                path.unlink()
            else:
                left += 1
        except OSError as exc:
            log.error("ALERT ledger: spool file %s not replayed, the disk failed: %s", path, exc)
            left += 1
        finally:
            claim.release()
    return left


async def _replay_file(path: Path, kind: str) -> bool:
    """True once the file's rows are stored (or refused, and moved on): it may go. Its rows
    are normalised again: one spooled by an older version may lack a column since added,
    which the insert would take for the database being away, for good."""
    rows, damaged = spool.read(path, DECIMAL_COLUMNS)
    _keep_damaged(path, damaged)
    rows = [normalise(row) for row in rows]
    refused, unavailable = await _write(rows)
    if unavailable:
        return False
    if refused and kind != spool.REJECTED:
        _spool(spool.REJECTED, refused)
    elif refused:
        return False
    metrics.LEDGER_REPLAYED.inc(len(rows) - len(refused))
    return True


def _keep_damaged(path: Path, lines: list[bytes]) -> None:
    """Keeps a file's lines that are no row under the file's own name in `damaged/`, once:
    a replay retried (the database away) or cut short by a crash finds them kept."""
    if not lines or (spool.folder(spool.DAMAGED) / path.name).exists():
        return
    kept = spool.write_lines(spool.DAMAGED, lines, name=path.name)
    metrics.LEDGER_SPOOLED.labels(spool.DAMAGED).inc(len(lines))
    log.error("ALERT ledger: %d line(s) of %s are no ledger row (cut short by a crash or a full disk); "
              "kept in %s for a person to read", len(lines), path.name, kept)


class Replayer:
    """Replays the pending spool in the background until it is empty."""

    def __init__(self) -> None:
        self._task: asyncio.Task | None = None

    def wake(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(settings.AKA_LEDGER_REPLAY_SECONDS)
            try:
                if await replay() == 0:
                    return
            except Exception:
                log.exception("ledger spool replay failed; will try again")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


replayer = PerLoop(Replayer)


class LedgerWriter:
    def __init__(self) -> None:
        self._queue: list[tuple[dict, asyncio.Future]] = []
        self._task: asyncio.Task | None = None

    async def enqueue(self, row: dict) -> None:
        """Queues a normalised ledger row and returns once it is committed or spooled."""
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
            try:
                await store([row for row, _ in batch])
                error = None
            except Exception as exc:  # the spool's disk failed too: the caller must hear of it
                log.critical("ledger rows NOT written, database and spool both failed: %r", batch)
                error = exc
            for _, future in batch:
                if future.done():
                    continue
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(error)

    async def close(self) -> None:
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)


writer = PerLoop(LedgerWriter)


@on_startup
async def replay_leftovers() -> None:
    """Rows spooled by a process that has since stopped, and the rows its journal still
    promised (it was killed), are replayed by the next one."""
    journal.adopt_orphans()
    if spool.files(spool.PENDING):
        replayer().wake()


@on_shutdown
async def close_writers() -> None:
    for found in writer.drain():
        await found.close()
    for found in replayer.drain():
        await found.close()
