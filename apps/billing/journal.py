"""The ledger's write-ahead journal: rows a process has promised but not yet committed.

A call's row is appended here before the client has the call's last byte (one write,
no fsync: the kernel keeps what a process wrote when the process is killed -9), and
forgotten once the writer has committed or spooled it. So a worker killed with calls
answered but their rows still queued in its memory does not lose them: the next process
to start moves a dead process's journal into the spool (apps.billing.spool), which
replays it. Rows are keyed by request id, so a row committed before the kill is not
written twice. A machine crash (not a process's) can lose the last rows journaled.

Each process writes its own segment files and holds a lock on each while it lives; a
segment whose lock can be taken belongs to a dead process. A segment is emptied whenever
none of its rows is outstanding, and replaced by a new one past SEGMENT_ROWS rows.
"""

import errno
import fcntl
import logging
import os
import time
from pathlib import Path

from . import spool

log = logging.getLogger(__name__)
JOURNAL = "journal"
SEGMENT_ROWS = 10_000


class Segment:
    def __init__(self) -> None:
        self.path = spool.folder(JOURNAL) / f"{time.time_ns()}-{os.getpid()}.jsonl"
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)  # ours while this process lives
        self.rows = self.outstanding = 0

    def close(self) -> None:
        self.path.unlink(missing_ok=True)
        os.close(self.fd)


class Journal:
    def __init__(self) -> None:
        self.pid = os.getpid()
        self.current: Segment | None = None

    def promise(self, row: dict) -> Segment:
        """Appends a normalised row; returns the segment to `settle` once the row is stored."""
        if self.current is None or self.pid != os.getpid():  # a forked child writes its own
            self.current, self.pid = Segment(), os.getpid()
        elif self.current.rows >= SEGMENT_ROWS:
            if not self.current.outstanding:
                self.current.close()
            self.current = Segment()
        segment = self.current
        line = spool.to_line(row)
        written = os.write(segment.fd, line)
        if written < len(line):  # a full disk: the next row must not follow a line cut short
            os.ftruncate(segment.fd, os.fstat(segment.fd).st_size - written)
            raise OSError(errno.ENOSPC, "ledger journal line cut short", str(segment.path))
        segment.rows += 1
        segment.outstanding += 1
        return segment

    def settle(self, segment: Segment) -> None:
        segment.outstanding -= 1
        if segment.outstanding:
            return
        if segment is self.current:
            os.ftruncate(segment.fd, 0)  # nothing in it is needed any more
            segment.rows = 0
        else:
            segment.close()


journal = Journal()


def adopt_orphans() -> int:
    """Moves the segments of dead processes into the pending spool; returns how many."""
    adopted = 0
    for path in sorted(spool.folder(JOURNAL).glob("*.jsonl")):
        if journal.current is not None and path == journal.current.path:
            continue
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)  # its process is alive
            continue
        try:
            if os.fstat(fd).st_size == 0:
                path.unlink(missing_ok=True)
            else:
                path.rename(Path(spool.folder(spool.PENDING)) / path.name)
                adopted += 1
        except FileNotFoundError:
            pass  # emptied and removed by its process as it ended
        finally:
            os.close(fd)
    if adopted:
        log.error("ALERT ledger: %d journal file(s) of a process that died moved to the spool; replaying", adopted)
    return adopted
