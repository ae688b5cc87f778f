"""The meter outbox against the Stripe fake: every billable call in exactly one acknowledged
meter event, whatever fails on the way."""

from datetime import timedelta

import pytest
from django.db.models import Sum
from django.utils import timezone

from apps.billing import accounts, outbox
from apps.billing.models import CallRecord, MeterWindow
from apps.billing.stripe_fake import Fault
from tests import factories
from tests.billing.helpers import drain, ledger_rows, sent_unacknowledged, unfinished

METER_EVENTS = "/v1/billing/meter_events"


@pytest.fixture
def fast(settings):
    settings.AKA_METER_WINDOW_SECONDS = 1
    settings.AKA_METER_RETRY_BASE, settings.AKA_METER_RETRY_MAX = 0.05, 0.2


@pytest.fixture
def customer(transactional_db, fake, fast):
    tenant, _ = factories.make_tenant("Metered")
    return tenant, accounts.customer_ensure(tenant_id=tenant.pk)


def windows(tenant):
    return MeterWindow.objects.for_tenant(tenant)


def test_every_billable_row_is_reported_once(customer, fake):
    tenant, cus = customer
    ledger_rows(tenant, 37)
    ledger_rows(tenant, 5, billable=False)
    drain()
    assert fake.usage(cus) == 37
    assert CallRecord.objects.for_tenant(tenant).filter(billable=True, meter_window__isnull=True).count() == 0
    assert CallRecord.objects.for_tenant(tenant).filter(billable=False, meter_window__isnull=False).count() == 0
    assert set(windows(tenant).values_list("state", flat=True)) == {"acked"}
    assert windows(tenant).aggregate(n=Sum("quantity"))["n"] == 37
    # One event per window, each with the window's identifier.
    events = fake.meter_events()
    assert sorted(e["identifier"] for e in events) == sorted(windows(tenant).values_list("identifier", flat=True))


def test_rows_arriving_later_go_in_a_later_window(customer, fake):
    tenant, cus = customer
    ledger_rows(tenant, 3)
    drain()
    first = set(windows(tenant).values_list("pk", flat=True))
    ledger_rows(tenant, 4)
    drain()
    later = windows(tenant).exclude(pk__in=first)
    assert later.aggregate(n=Sum("quantity"))["n"] == 4
    assert fake.usage(cus) == 7


def test_an_outage_then_recovery_loses_and_doubles_nothing(customer, fake):
    tenant, cus = customer
    fake.fail(Fault.SERVER_ERROR, times=4, path=METER_EVENTS)
    fake.fail(Fault.TIMEOUT, times=4, path=METER_EVENTS)
    fake.fail(Fault.RATE_LIMITED, times=3, path=METER_EVENTS)
    for _ in range(4):
        ledger_rows(tenant, 11)
        outbox.run(max_seconds=1)
    drain()
    assert fake.usage(cus) == 44
    assert windows(tenant).filter(attempts__gt=1).exists()  # it did retry


def test_a_send_that_got_through_before_the_worker_died_is_not_counted_twice(customer, fake):
    """The window is claimed and sent, and the process dies before writing the ack."""
    tenant, cus = customer
    sent_unacknowledged(tenant, 9)
    MeterWindow.objects.for_tenant(tenant).update(next_attempt_at=timezone.now())
    drain()
    assert fake.usage(cus) == 9
    found = windows(tenant).get()
    assert (found.state, found.attempts, found.maybe_received_at is not None) == ("acked", 2, True)


def test_a_window_unacknowledged_past_the_dedup_horizon_is_not_resent(customer, fake, settings):
    tenant, cus = customer
    ledger_rows(tenant, 2)
    while not outbox.claim(10):
        outbox.collect()
    old = timezone.now() - timedelta(seconds=settings.AKA_METER_DEDUP_HORIZON + 60)
    windows(tenant).update(next_attempt_at=timezone.now(), maybe_received_at=old)
    outbox.run(max_seconds=1)
    assert windows(tenant).get().state == "uncertain"
    assert fake.usage(cus) == 0


def test_a_refused_key_is_retried_and_starts_no_dedup_horizon(customer, fake):
    """Stripe records nothing for a key it refuses: the window waits for the key to be
    fixed, and is not taken for one that may have reached Stripe (the horizon would make
    it uncertain, never resent)."""
    tenant, cus = customer
    ledger_rows(tenant, 3)
    fake.fail(Fault.KEY_REFUSED, seconds=60, path=METER_EVENTS)
    while not windows(tenant).filter(attempts__gte=2).exists():
        outbox.run(max_seconds=1)
    found = windows(tenant).get()
    assert (found.state, found.maybe_received_at) == ("pending", None)
    assert "Invalid API Key" in found.last_error
    fake.recover()   # the key is fixed
    drain()
    assert windows(tenant).get().state == "acked" and fake.usage(cus) == 3


def test_a_refused_event_is_failed_not_retried(customer, fake):
    tenant, cus = customer
    ledger_rows(tenant, 1)
    fake.r.delete("fakestripe:customers")  # Stripe no longer knows the customer
    drain()
    assert windows(tenant).get().state == "failed"
    assert "No such customer" in windows(tenant).get().last_error


def test_without_stripe_windows_are_made_and_wait(transactional_db, no_stripe, fast):
    tenant, _ = factories.make_tenant("Unmetered")
    ledger_rows(tenant, 6)
    outbox.run()
    assert windows(tenant).get().quantity == 6
    assert windows(tenant).get().state == "pending"
    assert unfinished() == 1


def test_two_tenants_get_separate_windows(customer, fake):
    tenant, cus = customer
    other, _ = factories.make_tenant("Other metered")
    other_cus = accounts.customer_ensure(tenant_id=other.pk)
    ledger_rows(tenant, 3)
    ledger_rows(other, 8)
    drain()
    assert (fake.usage(cus), fake.usage(other_cus)) == (3, 8)


def test_a_window_older_than_stripe_accepts_is_sent_at_the_oldest_allowed_time(customer, fake):
    """An outage longer than 35 days still loses nothing: the event lands at the oldest
    timestamp Stripe takes (a later Stripe period), with a warning."""
    tenant, cus = customer
    ledger_rows(tenant, 5)
    outbox.collect()
    windows(tenant).update(start=timezone.now() - timedelta(days=40))
    drain()
    [event] = fake.meter_events()
    assert timezone.now().timestamp() - event["timestamp"] < 35 * 86400
    assert fake.usage(cus) == 5


def test_sends_are_paced_per_second_across_processes():
    """Two pacers (two workers) together stay within the rate in every second."""
    first, second = outbox.Pace(3), outbox.Pace(3)
    seconds = [pace.wait() for pace in [first, second] * 5]
    assert max(seconds.count(s) for s in set(seconds)) == 3
    assert len(set(seconds)) >= 4
