"""The ledger writer never loses a row: bad values are normalised, a row the database
refuses costs no other row its place, and rows the database cannot take are spooled
durably and replayed exactly once."""

import asyncio
import os
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest

from apps.billing import journal, ledger, partitions, services, spool
from apps.billing.models import CallRecord
from apps.core import metrics, pg
from tests import factories
from tests.billing.helpers import stored_in


@pytest.fixture
def loop(transactional_db, tmp_path, settings):
    settings.AKA_LEDGER_SPOOL_DIR = tmp_path / "spool"
    settings.AKA_LEDGER_REPLAY_SECONDS = 0.05
    loop = asyncio.new_event_loop()
    yield loop
    for found in ledger.replayer.drain():
        loop.run_until_complete(found.close())
    ledger.writer.drain()
    loop.run_until_complete(pg.close_pools())
    loop.close()


def row(tenant_id: int, **values) -> dict:
    return {"tenant_id": tenant_id, "request_id": "req_" + uuid.uuid4().hex, "endpoint": "chat.completions",
            "model_requested": "gpt-4o-mini", "model_served": "gpt-4o-mini", "status_code": 200, "billable": True,
            "price_cents": 10, "latency_ms": 1.5, **values}


def record_all(loop, rows: list[dict]) -> None:
    """Records the rows concurrently, as concurrent calls do, so they share one batch."""
    async def go():
        await asyncio.gather(*(ledger.writer().enqueue(ledger.normalise(r)) for r in rows))

    loop.run_until_complete(go())


def stored(tenant) -> dict[str, CallRecord]:
    return {r.request_id: r for r in CallRecord.objects.for_tenant(tenant)}


def spooled(kind: str) -> list[dict]:
    return [r for path in spool.files(kind) for r in spool.read(path, ledger.DECIMAL_COLUMNS)[0]]


def test_values_a_column_cannot_hold_are_normalised_not_refused(loop):
    tenant, _ = factories.make_tenant()
    rows = [row(tenant.pk, model_requested="m" * 101), row(tenant.pk, model_requested="gpt\x00-4o"),
            row(tenant.pk, prompt="a\x00b"), row(tenant.pk, prompt_tokens=2**40)]
    record_all(loop, rows)
    found = stored(tenant)
    assert len(found) == 4
    assert found[rows[0]["request_id"]].model_requested == "m" * 100
    assert found[rows[1]["request_id"]].model_requested == "gpt\ufffd-4o"
    assert found[rows[2]["request_id"]].prompt == "a\ufffdb"
    assert found[rows[3]["request_id"]].prompt_tokens == 2**31 - 1
    assert spooled(spool.PENDING) == spooled(spool.REJECTED) == []


def test_text_that_utf8_cannot_hold_is_replaced_and_other_text_kept(loop):
    tenant, _ = factories.make_tenant()
    rows = [row(tenant.pk, prompt="caf\u00e9 \ud800 ok"), row(tenant.pk, prompt="na\u00efve \u2014 fine")]
    record_all(loop, rows)
    found = stored(tenant)
    assert found[rows[0]["request_id"]].prompt == "caf\u00e9 ? ok"
    assert found[rows[1]["request_id"]].prompt == "na\u00efve \u2014 fine"


def test_a_refused_row_costs_no_other_row_its_place_and_is_kept(loop):
    good, _ = factories.make_tenant()
    before = metrics.LEDGER_SPOOLED.labels("rejected")._value.get()
    # A row for a tenant that does not exist (say, deleted mid-call) fails its foreign key.
    orphan = row(10**9)
    rows = [row(good.pk) for _ in range(5)]
    record_all(loop, rows[:2] + [orphan] + rows[2:])
    assert sorted(stored(good)) == sorted(r["request_id"] for r in rows)
    [kept] = spooled(spool.REJECTED)
    assert (kept["request_id"], kept["tenant_id"]) == (orphan["request_id"], 10**9)
    assert metrics.LEDGER_SPOOLED.labels("rejected")._value.get() == before + 1


def test_rows_the_database_cannot_take_are_spooled_then_replayed_once(loop, monkeypatch):
    tenant, _ = factories.make_tenant()
    real_insert = ledger._insert

    async def database_down(rows):
        raise psycopg.OperationalError("connection refused")

    monkeypatch.setattr(ledger, "_insert", database_down)
    rows = [row(tenant.pk, provider_cost_micros=Decimal("123.4567")) for _ in range(3)]
    record_all(loop, rows)  # returns: the rows are safe on disk
    assert stored(tenant) == {}
    assert sorted(r["request_id"] for r in spooled(spool.PENDING)) == sorted(r["request_id"] for r in rows)

    monkeypatch.setattr(ledger, "_insert", real_insert)
    # The background replayer, woken by the spooling, writes them once the database is back.
    async def wait_for_replay():
        for _ in range(100):
            if not spool.files(spool.PENDING):
                return
            await asyncio.sleep(0.05)

    loop.run_until_complete(wait_for_replay())
    assert sorted(stored(tenant)) == sorted(r["request_id"] for r in rows)
    assert {r.provider_cost_micros for r in stored(tenant).values()} == {Decimal("123.4567")}
    assert loop.run_until_complete(ledger.replay()) == 0
    assert CallRecord.objects.for_tenant(tenant).count() == 3


def test_replaying_a_file_twice_writes_its_rows_once(loop):
    tenant, _ = factories.make_tenant()
    rows = [ledger.normalise(row(tenant.pk)) for _ in range(2)]
    path = spool.write(spool.PENDING, rows)
    copy = spool.write(spool.PENDING, rows)  # as if a crash came between the insert and the unlink
    assert loop.run_until_complete(ledger.replay()) == 0
    assert not path.exists() and not copy.exists()
    assert CallRecord.objects.for_tenant(tenant).count() == 2


def test_a_batch_committed_whose_answer_was_lost_is_retried_without_a_duplicate(loop, monkeypatch):
    """The ledger's unique key holds its partition key, created_at: the row's time is
    fixed when it is queued, so the retry meets the same key."""
    tenant, _ = factories.make_tenant()
    real_insert, calls = ledger._insert, []

    async def committed_then_connection_lost(rows):
        calls.append(len(rows))
        await real_insert(rows)
        if len(calls) == 1:
            raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(ledger, "_insert", committed_then_connection_lost)
    rows = [row(tenant.pk) for _ in range(3)]
    record_all(loop, rows)
    assert calls == [3, 3]  # written, then written again
    assert sorted(stored(tenant)) == sorted(r["request_id"] for r in rows)
    assert CallRecord.objects.for_tenant(tenant).count() == 3
    assert spooled(spool.PENDING) == []


def test_a_row_keeps_its_time_through_the_spool_and_lands_once_in_its_months_partition(loop):
    tenant, _ = factories.make_tenant()
    queued = ledger.normalise(row(tenant.pk))
    loop.run_until_complete(ledger.store([queued]))
    path = spool.write(spool.PENDING, [queued])  # say, the spooling process crashed after its insert went through
    [read], _ = spool.read(path, ledger.DECIMAL_COLUMNS)
    assert read["created_at"] == queued["created_at"]
    assert loop.run_until_complete(ledger.replay()) == 0
    [found] = CallRecord.objects.for_tenant(tenant)
    assert found.created_at == queued["created_at"]
    assert stored_in(tenant) == {partitions.name_of(partitions.month_of(queued["created_at"])): 1}


def test_a_row_spooled_without_a_time_takes_its_files_and_replays_once(loop):
    """Files spooled before the ledger was partitioned have no created_at: each replay
    of the same file gives its rows the same one."""
    tenant, _ = factories.make_tenant()
    old = {k: v for k, v in ledger.normalise(row(tenant.pk)).items() if k != "created_at"}
    path = spool.write(spool.PENDING, [old])
    content = path.read_bytes()
    assert loop.run_until_complete(ledger.replay()) == 0
    path.write_bytes(content)  # a crash between the insert and the unlink: the same file again
    assert loop.run_until_complete(ledger.replay()) == 0
    assert CallRecord.objects.for_tenant(tenant).count() == 1


def test_a_journal_line_cut_short_by_a_crash_costs_no_other_row(loop, monkeypatch):
    """A machine crash can leave a dead process's journal with a line cut short, or zeros.
    Its other rows, and the spool files after it, are replayed; the cut line is kept once
    for a person, also when the replay is tried again. It raised on every replay, holding
    back every file after it."""
    tenant, _ = factories.make_tenant()
    dead = journal.Journal()
    first, second, third = (ledger.normalise(row(tenant.pk)) for _ in range(3))
    dead.promise(first)
    segment = dead.promise(second)
    torn = b'{"tenant_id": %d, "request_id": "req_' % tenant.pk
    os.write(segment.fd, torn + b"\x00" * 16 + b"\n" + b"\x00" * 8 + spool.to_line(third))
    os.close(segment.fd)  # the process is gone
    assert journal.adopt_orphans() == 1
    later = ledger.normalise(row(tenant.pk))
    spool.write(spool.PENDING, [later])  # named after the adopted segment: replayed after it
    before = metrics.LEDGER_SPOOLED.labels(spool.DAMAGED)._value.get()
    real_insert = ledger._insert

    async def database_down(rows):
        raise psycopg.OperationalError("connection refused")

    monkeypatch.setattr(ledger, "_insert", database_down)
    assert loop.run_until_complete(ledger.replay()) == 2
    monkeypatch.setattr(ledger, "_insert", real_insert)
    assert loop.run_until_complete(ledger.replay()) == 0
    assert sorted(stored(tenant)) == sorted(r["request_id"] for r in (first, second, third, later))
    assert spool.files(spool.PENDING) == []
    [kept] = spool.files(spool.DAMAGED)
    assert kept.name == segment.path.name and kept.read_bytes() == torn + b"\x00" * 16 + b"\n"
    assert metrics.LEDGER_SPOOLED.labels(spool.DAMAGED)._value.get() == before + 1


def test_a_row_whose_values_do_not_convert_is_kept_aside_not_raised(loop):
    tenant, _ = factories.make_tenant()
    good = ledger.normalise(row(tenant.pk))
    bad = [{**good, "request_id": "req_cost", "provider_cost_micros": "lots"},
           {**good, "request_id": "req_time", "created_at": "yesterday"}, [1, 2]]
    path = spool.write_lines(spool.PENDING, [spool.to_line(good), *map(spool.to_line, bad)])
    assert loop.run_until_complete(ledger.replay()) == 0
    assert list(stored(tenant)) == [good["request_id"]]
    assert (spool.folder(spool.DAMAGED) / path.name).read_bytes().count(b"\n") == 3


def test_a_row_spooled_by_an_older_version_without_a_later_column_is_replayed(loop):
    """Its insert lacked a value for the column and was taken for the database being away:
    the file was never replayed."""
    tenant, _ = factories.make_tenant()
    old = {k: v for k, v in ledger.normalise(row(tenant.pk)).items() if k not in ("judge_score", "route")}
    spool.write(spool.PENDING, [old])
    assert loop.run_until_complete(ledger.replay()) == 0
    assert list(stored(tenant)) == [old["request_id"]]


def test_a_file_the_disk_cannot_finish_replaying_holds_back_no_other(loop, monkeypatch):
    tenant, _ = factories.make_tenant()
    torn, whole = (ledger.normalise(row(tenant.pk)) for _ in range(2))
    stuck = spool.write_lines(spool.PENDING, [spool.to_line(torn), b'{"cut\n'])
    spool.write(spool.PENDING, [whole])
    real = spool.write_lines

    def disk_full(kind, lines, name=None):
        if kind == spool.DAMAGED:
            raise OSError(28, "No space left on device")
        return real(kind, lines, name)

    monkeypatch.setattr(spool, "write_lines", disk_full)
    assert loop.run_until_complete(ledger.replay()) == 1
    assert list(stored(tenant)) == [whole["request_id"]] and spool.files(spool.PENDING) == [stuck]
    monkeypatch.setattr(spool, "write_lines", real)
    assert loop.run_until_complete(ledger.replay()) == 0
    assert sorted(stored(tenant)) == sorted([torn["request_id"], whole["request_id"]])


def test_a_call_committed_whose_journal_outlived_it_is_written_once_on_replay(loop):
    """A process killed after its row was committed but before the journal forgot it: the
    journal's copy carries the call's own time, the ledger's key with the committed row."""
    tenant, _ = factories.make_tenant()
    facts = services.CallFacts(tenant_id=tenant.pk, api_key_id=None, request_id="req_" + uuid.uuid4().hex,
                               endpoint="chat.completions", status=200, price_per_call_cents=10,
                               created_at=datetime.now(UTC) - timedelta(seconds=3))
    book = journal.Journal()
    promised = book.promise(ledger.normalise(services.ledger_row(facts=facts)))
    record_all(loop, [services.ledger_row(facts=facts)])  # committed, and the process dies before it settles
    os.close(promised.fd)  # the process dies: its journal's lock goes with it
    assert journal.adopt_orphans() == 1
    assert loop.run_until_complete(ledger.replay()) == 0
    [found] = CallRecord.objects.for_tenant(tenant)
    assert found.request_id == facts.request_id and found.created_at == facts.created_at


def _facts(tenant_id: int, **values) -> services.CallFacts:
    return services.CallFacts(tenant_id=tenant_id, api_key_id=None, request_id="req_" + uuid.uuid4().hex,
                              endpoint="chat.completions", status=200, price_per_call_cents=10,
                              created_at=datetime.now(UTC), **values)


def test_a_call_recorded_as_promised_is_built_and_normalised_once(loop, monkeypatch):
    tenant, _ = factories.make_tenant()
    built = []
    monkeypatch.setattr(services, "normalise", lambda row: built.append(row) or ledger.normalise(row))
    facts = _facts(tenant.pk, latency_ms=12.5)
    promised = services.call_promise(facts=facts)
    loop.run_until_complete(services.call_record(facts=facts, promised=promised))
    assert len(built) == 1
    [found] = CallRecord.objects.for_tenant(tenant)
    assert (found.request_id, found.status_code, found.billable, found.price_cents, found.created_at) == (
        facts.request_id, 200, True, 10, facts.created_at)
    assert promised.segment.outstanding == 0  # the journal forgot it


def test_a_call_that_ended_otherwise_than_promised_is_recorded_as_it_ended(loop):
    """A stream's row is promised as delivered; its client left before the last event."""
    tenant, _ = factories.make_tenant()
    facts = _facts(tenant.pk, stream=True)
    promised = services.call_promise(facts=facts)
    ended = replace(facts, status=499, error_type="client_closed")
    loop.run_until_complete(services.call_record(facts=ended, promised=promised))
    [found] = CallRecord.objects.for_tenant(tenant)
    assert (found.status_code, found.error_type, found.billable, found.price_cents) == (499, "client_closed", False, 0)
    assert promised.segment.outstanding == 0
