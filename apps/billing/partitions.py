"""The ledger's monthly partitions: made ahead, rows that found none adopted, old ones
dropped whole.

billing_callrecord is partitioned by RANGE (created_at): one partition per calendar
month (UTC), named billing_callrecord_yYYYYmMM, and a DEFAULT partition that takes any
row whose month has no partition yet, so an insert never fails for want of one (a
spooled row replayed into a month already dropped, a clock far ahead, a beat that
stopped running). `maintain` (Celery beat) keeps the previous month, the
current one and AKA_LEDGER_PARTITIONS_AHEAD months after it made, moves any rows in the DEFAULT
partition into their month's own partition, and with AKA_LEDGER_RETENTION_MONTHS set
drops every partition whose month ended longer ago than that: one DROP TABLE, no
row-by-row DELETE, no bloat left for vacuum. A partition that still holds a billable row
not yet on a finalized invoice is never dropped (money not yet billed); it is logged and
tried again on the next run.

Each change is its own short transaction with a lock timeout: attaching needs only a
light lock on the ledger, but dropping a partition needs an exclusive one, which the
gateway's inserts wait behind; a change that cannot get its lock soon waits for the next
run rather than stall the inserts.
"""

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from django.conf import settings
from django.db import OperationalError, connection, transaction

from .invoices import Period
from .models import CallRecord, Invoice

log = logging.getLogger(__name__)

PARENT = CallRecord._meta.db_table
DEFAULT = f"{PARENT}_default"
_NAME = re.compile(rf"^{PARENT}_y(\d{{4}})m(\d{{2}})$")
_LOCK = 0x616B6C70  # pg advisory lock key ("aklp"): one maintainer at a time
LOCK_TIMEOUT = "3s"


def month_of(moment: datetime) -> date:
    """The first day of the UTC month holding `moment` (an invoice's period: invoices.Period)."""
    return Period.containing(moment).start.date()


def _period(month: date) -> Period:
    return Period.containing(datetime(month.year, month.month, 1, tzinfo=UTC))


def months_after(month: date, n: int) -> date:
    """The month `n` months after `month` (before it for a negative n)."""
    return _period(month).shifted(n).start.date()


def name_of(month: date) -> str:
    return f"{PARENT}_y{month.year:04d}m{month.month:02d}"


def _bounds(month: date) -> tuple[datetime, datetime]:
    period = _period(month)
    return period.start, period.end


def months_due(*, now: datetime | None = None) -> list[date]:
    """The months whose partitions are kept made: the previous one (where a month's last
    calls, spooled or backfilled, land after it ended), the current one and the
    AKA_LEDGER_PARTITIONS_AHEAD after it."""
    current = month_of(now or datetime.now(UTC))
    return [months_after(current, n) for n in range(-1, settings.AKA_LEDGER_PARTITIONS_AHEAD + 1)]


def existing() -> dict[date, str]:
    """The ledger's monthly partitions by month (the DEFAULT partition aside)."""
    with connection.cursor() as cur:
        cur.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "WHERE i.inhparent = %s::regclass", [PARENT])
        names = [name for (name,) in cur.fetchall()]
    return {date(int(m[1]), int(m[2]), 1): name for name in names if (m := _NAME.match(name))}


def _stranded() -> list[date]:
    """Months of the rows waiting in the DEFAULT partition."""
    with connection.cursor() as cur:
        cur.execute(f"SELECT DISTINCT date_trunc('month', created_at AT TIME ZONE 'UTC')::date FROM {DEFAULT}")
        return sorted(month for (month,) in cur.fetchall())


def create(month: date) -> int:
    """Makes `month`'s partition, moving in the rows of that month that wait in the DEFAULT
    partition (in the same transaction, so none is ever in neither). Returns how many
    rows moved. Made apart and then attached: attaching locks the ledger only lightly,
    so inserts go on meanwhile."""
    name, (start, end) = name_of(month), _bounds(month)
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        # No new row may reach DEFAULT's copy of this month between the move and the attach.
        cur.execute(f"LOCK TABLE {DEFAULT} IN EXCLUSIVE MODE")
        cur.execute(f"CREATE TABLE {name} (LIKE {PARENT} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        cur.execute(f"WITH moved AS (DELETE FROM {DEFAULT} WHERE created_at >= %s AND created_at < %s RETURNING *) "
                    f"INSERT INTO {name} SELECT * FROM moved", [start, end])
        moved = cur.rowcount
        cur.execute(f"ALTER TABLE {PARENT} ATTACH PARTITION {name} FOR VALUES FROM (%s) TO (%s)", [start, end])
    if moved:
        log.warning("ledger: %d row(s) of %s had no partition and waited in %s; moved into %s",
                    moved, f"{month:%Y-%m}", DEFAULT, name)
    return moved


def unbilled(month: date) -> bool:
    """Whether `month`'s partition holds a billable row not yet on a finalized invoice."""
    with connection.cursor() as cur:
        cur.execute(f"""
            SELECT EXISTS (SELECT 1 FROM {name_of(month)} WHERE billable AND meter_window_id IS NULL)
                OR EXISTS (SELECT 1 FROM {name_of(month)} WHERE invoice_id IN (
                               SELECT id FROM {Invoice._meta.db_table} WHERE status = %s))""",
                    [Invoice.Status.DRAFT])
        return bool(cur.fetchone()[0])


def drop(month: date) -> None:
    """Drops `month`'s partition, rows and indexes at once."""
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        cur.execute(f"DROP TABLE {name_of(month)}")


@dataclass
class Maintained:
    created: list[str] = field(default_factory=list)
    adopted_rows: int = 0
    dropped: list[str] = field(default_factory=list)
    kept_unbilled: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def maintain(*, now: datetime | None = None) -> Maintained:
    """Makes the partitions of `months_due`, adopts the DEFAULT partition's rows, and drops partitions past retention. Safe to
    run any number of times, and at once (runs take turns)."""
    done = Maintained()
    with connection.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_lock(%s)", [_LOCK])
        if not cur.fetchone()[0]:
            return done
    try:
        current = month_of(now or datetime.now(UTC))
        made = existing()  # the loop only adds months it is about to check
        for month in sorted(set(months_due(now=now)) | set(_stranded())):
            if month not in made:
                _try(done, name_of(month), lambda m=month: _created(done, m))
        retention = settings.AKA_LEDGER_RETENTION_MONTHS
        if retention:
            # Kept: the current month and the `retention` whole months before it.
            oldest_kept = months_after(current, -retention)
            for month, name in sorted(existing().items()):
                if month >= oldest_kept:
                    continue
                if unbilled(month):
                    log.error("ALERT ledger: %s is past retention but holds billable calls not yet on a finalized "
                              "invoice; kept", name)
                    done.kept_unbilled.append(name)
                    continue
                _try(done, name, lambda m=month: _dropped(done, m))
    finally:
        with connection.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(%s)", [_LOCK])
    return done


def _created(done: Maintained, month: date) -> None:
    done.adopted_rows += create(month)
    done.created.append(name_of(month))


def _dropped(done: Maintained, month: date) -> None:
    drop(month)
    done.dropped.append(name_of(month))


def _try(done: Maintained, name: str, action) -> None:
    try:
        action()
    except OperationalError as exc:  # most often a lock not granted in time: the next run tries again
        log.warning("ledger partition %s not changed this run: %s", name, exc)
        done.failed.append(name)
