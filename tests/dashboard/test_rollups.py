"""Rollup refresh: idempotent, incremental (only the last hours are recomputed), and run
by a real Celery worker through Redis."""

import time
from datetime import timedelta

import pytest
from django.db.models import Sum
from django.utils import timezone

from apps.billing.models import CallRecord
from apps.dashboard.models import CallRollup, LatencyRollup, RollupState
from apps.dashboard.rollups import hour_floor, rollups_refresh
from apps.dashboard.tasks import refresh_rollups
from tests.cache.test_expiry_worker import worker  # noqa: F401  (a real worker on its own queue)
from tests.dashboard import ledger

pytestmark = pytest.mark.django_db


def snapshot():
    return sorted(CallRollup.objects.unscoped_across_all_tenants().values_list(
        "tenant_id", "hour", "model", "cache", "route", "outcome", "billable", "calls", "provider_cost_micros",
        "latency_sum_ms"), key=repr) + sorted(LatencyRollup.objects.unscoped_across_all_tenants().values_list(
            "tenant_id", "hour", "calls", "latency_hist"), key=repr)


def test_refreshing_twice_changes_nothing(party):
    now = timezone.now()
    ledger.calls(party.tenant, n=300, start=now - timedelta(days=2), span=timedelta(days=2))
    ledger.calls(party.other_tenant, n=100, start=now - timedelta(days=1), span=timedelta(hours=20), seed=4)
    through = rollups_refresh(now=now)
    first = snapshot()
    assert rollups_refresh(now=now) == through == hour_floor(now)
    assert snapshot() == first
    rolled = CallRollup.objects.for_tenant(party.tenant).aggregate(n=Sum("calls"))["n"]
    assert rolled == CallRecord.objects.for_tenant(party.tenant).filter(created_at__lt=through).count()
    assert LatencyRollup.objects.for_tenant(party.tenant).aggregate(n=Sum("calls"))["n"] == rolled


def test_a_refresh_recomputes_only_the_hours_since_the_last_one(party):
    now = timezone.now()
    old = ledger.calls(party.tenant, n=50, start=now - timedelta(days=2), span=timedelta(hours=3))
    rollups_refresh(now=now - timedelta(hours=3))
    # An old row changed behind the rollups' back is not re-read: older hours are settled...
    CallRecord.objects.for_tenant(party.tenant).filter(pk=old[0].pk).update(latency_ms=99_999)
    # ...while calls in the hours since the watermark (and one before it) are rolled up.
    ledger.calls(party.tenant, n=30, start=now - timedelta(hours=3, minutes=30), span=timedelta(hours=2), seed=7)
    rollups_refresh(now=now)
    rolled = CallRollup.objects.for_tenant(party.tenant).aggregate(n=Sum("calls"), lat=Sum("latency_sum_ms"))
    rows = CallRecord.objects.for_tenant(party.tenant).filter(created_at__lt=hour_floor(now))
    assert rolled["n"] == rows.count() == 80
    assert rolled["lat"] < rows.aggregate(s=Sum("latency_ms"))["s"]  # the old hour kept its old sum
    assert RollupState.objects.get().through == hour_floor(now)


def test_rows_replayed_hours_after_their_calls_are_rolled_up(party):
    """A spool replayed when a process comes back inserts rows that keep their calls'
    times, older than the hours a refresh re-checks: their hours are recomputed."""
    now = timezone.now()
    ledger.calls(party.tenant, n=40, start=now - timedelta(hours=30), span=timedelta(hours=20))
    rollups_refresh(now=now)
    late = ledger.calls(party.tenant, n=12, start=now - timedelta(hours=26), span=timedelta(hours=3), seed=9)
    before = snapshot()
    rollups_refresh(now=now)
    rolled = CallRollup.objects.for_tenant(party.tenant).aggregate(n=Sum("calls"))["n"]
    assert rolled == CallRecord.objects.for_tenant(party.tenant).filter(created_at__lt=hour_floor(now)).count() == 52
    assert LatencyRollup.objects.for_tenant(party.tenant).aggregate(n=Sum("calls"))["n"] == 52
    # Only the late rows' hours changed; the rest of the day was left as it was.
    after = snapshot()
    changed = {row[1] for row in after + before if (row in after) != (row in before)}
    assert changed == {hour_floor(row.created_at) for row in late}


def test_a_replayed_row_committed_after_a_refresh_with_a_newer_id_is_rolled_up(party):
    """Ids are taken at insert and seen at commit: a replay in flight while a refresh runs
    holds an id below rows another process committed meanwhile."""
    now = timezone.now()
    ledger.calls(party.tenant, n=20, start=now - timedelta(hours=30), span=timedelta(hours=20))
    rollups_refresh(now=now)
    [replayed] = ledger.calls(party.tenant, n=1, start=now - timedelta(hours=26), span=timedelta(hours=1), seed=5)
    CallRecord.objects.for_tenant(party.tenant).filter(pk=replayed.pk).delete()   # its id taken, not yet committed
    ledger.calls(party.tenant, n=1, start=hour_floor(now) - timedelta(minutes=30), span=timedelta(minutes=1), seed=6)
    rollups_refresh(now=now)                     # sees the newer row only
    CallRecord.objects.for_tenant(party.tenant).bulk_create([replayed])   # the replay commits, its id below
    rollups_refresh(now=now)
    rolled = CallRollup.objects.for_tenant(party.tenant).aggregate(n=Sum("calls"))["n"]
    assert rolled == CallRecord.objects.for_tenant(party.tenant).filter(created_at__lt=hour_floor(now)).count() == 22


def test_rows_replayed_into_a_ledger_empty_at_the_first_refreshes_are_rolled_up(party):
    """A fresh deployment: the first refreshes see no row, so there is no id to compare with."""
    now = timezone.now()
    rollups_refresh(now=now)
    rollups_refresh(now=now)
    ledger.calls(party.tenant, n=7, start=now - timedelta(hours=30), span=timedelta(hours=2), seed=8)
    rollups_refresh(now=now)
    assert CallRollup.objects.for_tenant(party.tenant).aggregate(n=Sum("calls"))["n"] == 7


def test_a_celery_worker_refreshes_the_rollups(worker, party):  # noqa: F811  (the imported fixture)
    ledger.calls(party.tenant, n=20, start=timezone.now() - timedelta(hours=5), span=timedelta(hours=2))
    refresh_rollups.apply_async(queue=worker)
    deadline = time.monotonic() + 30
    while not RollupState.objects.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert CallRollup.objects.for_tenant(party.tenant).aggregate(n=Sum("calls"))["n"] == 20
