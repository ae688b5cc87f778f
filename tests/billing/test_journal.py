"""The ledger's journal: rows promised before an answer goes out, forgotten once stored,
and handed to the spool when the process that promised them died."""

import fcntl
import os

import pytest

from apps.billing import journal, spool


@pytest.fixture
def folder(settings, tmp_path):
    settings.AKA_LEDGER_SPOOL_DIR = tmp_path
    return tmp_path


def lines(segment: journal.Segment) -> int:
    return len(segment.path.read_bytes().splitlines())


def test_a_segment_is_emptied_once_no_row_in_it_is_outstanding(folder):
    book = journal.Journal()
    first = book.promise({"request_id": "req_1"})
    second = book.promise({"request_id": "req_2"})
    assert first is second and lines(first) == 2
    book.settle(first)
    assert lines(first) == 2  # req_2 is still only here
    book.settle(second)
    assert lines(first) == 0


def test_a_row_the_full_disk_cut_short_is_undone(folder, monkeypatch):
    """A short write (a full disk) is taken back and raised, as a failed one is: the next
    row would otherwise be glued to the cut line and be unreadable with it."""
    book = journal.Journal()
    book.promise({"request_id": "req_1"})
    real = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real(fd, data[:7]))
    with pytest.raises(OSError):
        book.promise({"request_id": "req_2"})
    monkeypatch.setattr(os, "write", real)
    segment = book.promise({"request_id": "req_3"})
    assert [row["request_id"] for row in spool.read(segment.path, set())[0]] == ["req_1", "req_3"]
    assert segment.outstanding == 2


def test_only_a_dead_processs_segments_go_to_the_spool(folder):
    alive, dead = journal.Journal(), journal.Journal()
    alive.promise({"request_id": "req_alive"})
    gone = dead.promise({"request_id": "req_dead"})
    os.close(gone.fd)  # what dying does to its lock
    assert journal.adopt_orphans() == 1
    [moved] = spool.files(spool.PENDING)
    assert [row["request_id"] for row in spool.read(moved, set())[0]] == ["req_dead"]
    assert alive.current.path.exists()  # a live process keeps its own


def test_an_empty_segment_of_a_dead_process_is_removed(folder):
    dead = journal.Journal()
    segment = dead.promise({"request_id": "req_1"})
    dead.settle(segment)
    fcntl.flock(segment.fd, fcntl.LOCK_UN)
    assert journal.adopt_orphans() == 0
    assert not segment.path.exists() and not spool.files(spool.PENDING)
