"""The ledger's durable local spool: rows the database could not take right now, or
refused outright, kept on disk instead of being dropped.

Each spooling writes one file (written to a temporary name, fsynced, then renamed, so
a crash leaves either the whole file or none). `pending/` holds rows that met an
unavailable database: the gateway replays them as soon as it can. `rejected/` holds
rows PostgreSQL refused even after normalisation (say, a deleted tenant): they need a
person, so spooling one logs an error and counts in `aka_ledger_spooled_total`;
`manage.py replay_ledger_spool --rejected` retries them once the cause is fixed.
`damaged/` keeps the lines of a replayed file that were no row (a journal line cut short
by a machine crash or a full disk), for a person to read; nothing replays them.
Replaying is idempotent: a row keeps the created_at it was queued with, and rows are
unique by (tenant, request id, created_at) (ON CONFLICT DO NOTHING). A row spooled
without one (by a version before the ledger was partitioned) takes its file's time,
the same at every replay.
"""

import fcntl
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import orjson
from django.conf import settings
from prometheus_client.core import GaugeMetricFamily

from apps.core import metrics

PENDING, REJECTED, DAMAGED = "pending", "rejected", "damaged"


def folder(kind: str) -> Path:
    path = Path(settings.AKA_LEDGER_SPOOL_DIR) / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


def to_line(row: dict) -> bytes:
    """A row as one line of a spool file (the journal writes its lines the same way)."""
    return orjson.dumps(row, default=str) + b"\n"


def write(kind: str, rows: list[dict]) -> Path:
    """Durably stores `rows` (column -> value) in one new file of `kind`."""
    return write_lines(kind, [to_line(row) for row in rows])


def write_lines(kind: str, lines: list[bytes], name: str | None = None) -> Path:
    """Durably stores `lines` (each ending in a newline) in one file of `kind`: a new one,
    or `name`, replaced whole if it exists."""
    target = folder(kind) / (name or f"{time.time_ns()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl")
    temporary = target.with_suffix(".tmp")
    data = b"".join(lines)
    with open(temporary, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    temporary.rename(target)
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself must survive a crash
    finally:
        os.close(directory)
    return target


def files(kind: str) -> list[Path]:
    return sorted(folder(kind).glob("*.jsonl"))


def read(path: Path, decimal_columns: set[str]) -> tuple[list[dict], list[bytes]]:
    """The file's rows, and its lines that are none (each with its newline). A crash can
    leave a line cut short or zeros in a journal; one such line must not keep the file's
    other rows, or the files after it, from being replayed."""
    rows, damaged = [], []
    for line in path.read_bytes().splitlines():
        text = line.strip(b" \t\r\x00")
        if not text:
            continue
        try:
            rows.append(_row(orjson.loads(text), decimal_columns, path))
        except (ValueError, TypeError, ArithmeticError):  # not JSON, not an object, a value that does not convert
            damaged.append(line + b"\n")
    return rows, damaged


def _row(row, decimal_columns: set[str], path: Path) -> dict:
    if not isinstance(row, dict):
        raise TypeError(f"a spool line holds {type(row).__name__}, not a row")
    for column in decimal_columns & row.keys():
        if row[column] is not None:
            row[column] = Decimal(row[column])
    row["created_at"] = datetime.fromisoformat(row["created_at"]) if row.get("created_at") else _written(path)
    return row


def _written(path: Path) -> datetime:
    """When the file was spooled: its name starts with time.time_ns() (exact to the microsecond)."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(path.name.split("-")[0]) // 1000)


class Claim:
    """An exclusive hold on one spool file while it is replayed, so two processes never
    replay the same file at once; None from `take` when another holds it."""

    def __init__(self, handle):
        self.handle = handle

    @classmethod
    def take(cls, path: Path) -> "Claim | None":
        try:
            handle = open(path, "rb")
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return None
        return cls(handle)

    def release(self) -> None:
        self.handle.close()


@metrics.at_scrape
def _pending_files():
    # Files, not rows: counting rows would read every file at every scrape.
    yield GaugeMetricFamily("aka_ledger_spool_pending_files", "Spooled ledger files waiting for replay",
                            value=len(files(PENDING)))
