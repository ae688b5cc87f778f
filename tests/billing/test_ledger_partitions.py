"""The ledger's monthly partitions: a row lands in its month's, a row whose month has none
waits in DEFAULT until the beat task makes it, and retention drops whole partitions,
never ones holding calls not yet billed. (Each test's DDL rolls back with its transaction.)"""

import uuid
from datetime import UTC, date, datetime

import pytest
from django.conf import settings as django_settings
from django.db import connection

from apps.billing import invoices, partitions, tasks
from apps.billing.models import CallRecord, Invoice
from tests import factories

from .helpers import ledger_rows, stored_in

pytestmark = pytest.mark.django_db


def rows_at(tenant, at: datetime, n: int = 1, billable: bool = False) -> list[CallRecord]:
    return CallRecord.objects.for_tenant(tenant).bulk_create(
        CallRecord(tenant_id=tenant.pk, request_id="req_" + uuid.uuid4().hex, endpoint="chat.completions",
                   model_requested="m", model_served="m", status_code=200 if billable else 502, billable=billable,
                   price_cents=10 if billable else 0, latency_ms=1.0, created_at=at) for _ in range(n))


def table_exists(name: str) -> bool:
    with connection.cursor() as cur:
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
        return cur.fetchone()[0]


def as_committed() -> None:
    """Runs the deferred foreign-key checks now, as a commit would (a table with pending
    ones cannot be dropped inside the test's transaction)."""
    with connection.cursor() as cur:
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")


def test_rows_land_in_their_months_partition():
    tenant, _ = factories.make_tenant()
    now = datetime.now(UTC)
    rows_at(tenant, now, 2)
    next_month = partitions.months_after(partitions.month_of(now), 1)
    rows_at(tenant, datetime(next_month.year, next_month.month, 1, tzinfo=UTC))  # the first instant of the next
    assert stored_in(tenant) == {partitions.name_of(partitions.month_of(now)): 2, partitions.name_of(next_month): 1}


def test_a_row_without_its_months_partition_waits_in_default_and_the_task_adopts_it(caplog):
    tenant, _ = factories.make_tenant()
    far = datetime(2031, 7, 9, 12, 30, tzinfo=UTC)
    assert date(2031, 7, 1) not in partitions.existing()
    [row] = rows_at(tenant, far)  # not refused, not lost
    assert stored_in(tenant) == {partitions.DEFAULT: 1}

    done = partitions.maintain(now=datetime(2031, 6, 2, tzinfo=UTC))
    ahead = [date(2031, 5, 1), date(2031, 6, 1), date(2031, 7, 1), date(2031, 8, 1), date(2031, 9, 1)]
    assert done.created == [partitions.name_of(m) for m in ahead]
    assert set(ahead) <= set(partitions.existing())
    assert done.adopted_rows == 1
    assert stored_in(tenant) == {"billing_callrecord_y2031m07": 1}
    moved = CallRecord.objects.for_tenant(tenant).get()
    assert (moved.pk, moved.request_id, moved.created_at) == (row.pk, row.request_id, far)
    assert "had no partition" in caplog.text
    assert partitions.maintain(now=datetime(2031, 6, 2, tzinfo=UTC)).created == []  # safe to run again


def test_the_beat_task_makes_the_months_ahead():
    assert django_settings.CELERY_BEAT_SCHEDULE["billing-ledger-partitions"]["task"] == "billing.ledger_partitions"
    now = partitions.month_of(datetime.now(UTC))
    coming = partitions.months_after(now, django_settings.AKA_LEDGER_PARTITIONS_AHEAD)
    with connection.cursor() as cur:
        cur.execute(f"DROP TABLE {partitions.name_of(coming)}")  # as if beat had not run for months
    assert partitions.name_of(coming) in tasks.ledger_partitions()["created"]
    assert coming in partitions.existing()


def test_retention_drops_a_whole_old_partition_and_nothing_else(settings):
    settings.AKA_LEDGER_RETENTION_MONTHS = 12
    tenant, _ = factories.make_tenant()
    old = date(2020, 1, 1)
    partitions.create(old)
    at = datetime(2020, 1, 15, tzinfo=UTC)
    ledger_rows(tenant, 3, at=at)  # billed: collected into a window and a draft invoice...
    invoice = invoices.period_close(tenant_id=tenant.pk, period=invoices.Period.containing(at))  # ...now final
    assert invoice.calls == 3
    rows_at(tenant, at, 2)  # failed calls: nothing to bill
    recent = rows_at(tenant, datetime.now(UTC), 1)
    assert stored_in(tenant)["billing_callrecord_y2020m01"] == 5
    as_committed()

    done = partitions.maintain()
    assert done.dropped == ["billing_callrecord_y2020m01"] and done.kept_unbilled == []
    assert not table_exists("billing_callrecord_y2020m01")  # the table went, not its rows one by one
    assert old not in partitions.existing()
    assert list(CallRecord.objects.for_tenant(tenant).values_list("pk", flat=True)) == [recent[0].pk]
    assert Invoice.objects.for_tenant(tenant).get(pk=invoice.pk).total_cents == invoice.total_cents  # the bill stays


def test_retention_keeps_a_partition_holding_calls_not_yet_billed(settings, caplog):
    settings.AKA_LEDGER_RETENTION_MONTHS = 12
    tenant, _ = factories.make_tenant()
    partitions.create(date(2020, 2, 1))
    rows_at(tenant, datetime(2020, 2, 3, tzinfo=UTC), 2, billable=True)  # never collected by the outbox
    as_committed()

    done = partitions.maintain()
    assert done.kept_unbilled == ["billing_callrecord_y2020m02"] and done.dropped == []
    assert table_exists("billing_callrecord_y2020m02")
    assert CallRecord.objects.for_tenant(tenant).count() == 2
    assert "ALERT ledger" in caplog.text


def test_without_retention_nothing_is_dropped(settings):
    settings.AKA_LEDGER_RETENTION_MONTHS = 0
    tenant, _ = factories.make_tenant()
    partitions.create(date(2019, 5, 1))
    rows_at(tenant, datetime(2019, 5, 5, tzinfo=UTC))
    as_committed()
    assert partitions.maintain().dropped == []
    assert stored_in(tenant) == {"billing_callrecord_y2019m05": 1}
