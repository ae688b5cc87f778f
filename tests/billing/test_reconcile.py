"""Daily reconciliation: the meter's totals in Stripe against what we acknowledged."""

import time
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from apps.billing import accounts, reconcile, selectors, stripe_api, tasks
from apps.billing.models import MeterDiscrepancy, MeterWindow
from apps.core import metrics
from tests import factories
from tests.billing.helpers import drain, ledger_rows, sent_unacknowledged


@pytest.fixture
def metered(transactional_db, fake, settings):
    settings.AKA_METER_WINDOW_SECONDS = 1
    tenant, _ = factories.make_tenant("Reconciled")
    customer = accounts.customer_ensure(tenant_id=tenant.pk)
    ledger_rows(tenant, 12)
    drain()
    return tenant, customer


def discrepancies() -> float:
    return metrics.BILLING_DISCREPANCIES._value.get()


def test_matching_totals_flag_nothing(metered):
    before = discrepancies()
    assert reconcile.reconcile_day(day=datetime.now(UTC).date()).differ == 0
    assert not selectors.meter_discrepancies().exists()
    assert discrepancies() == before


def test_a_difference_is_flagged_with_a_row_a_metric_and_a_log(metered, caplog):
    tenant, customer = metered
    stripe_api.meter_event_send(identifier="stray", customer=customer, value=3, timestamp=int(time.time()))
    before = discrepancies()
    today = datetime.now(UTC).date()
    assert reconcile.reconcile_day(day=today).differ == 1
    [found] = selectors.meter_discrepancies()
    assert (found.tenant_id, found.day, found.ours, found.stripes) == (tenant.pk, today, 12, 15.0)
    assert discrepancies() == before + 1
    assert "Stripe's meter has 15" in caplog.text
    assert MeterDiscrepancy.objects.for_tenant(tenant).count() == 1


@pytest.fixture
def two_metered(transactional_db, fake, settings):
    settings.AKA_METER_WINDOW_SECONDS = 1
    customers = {}
    for name in ("First", "Second"):
        tenant, _ = factories.make_tenant(name)
        customers[tenant.pk] = accounts.customer_ensure(tenant_id=tenant.pk)
        ledger_rows(tenant, 5)
    drain()
    # Stripe's meter holds 3 stray calls for each tenant: a real discrepancy for both.
    for customer in customers.values():
        stripe_api.meter_event_send(identifier=f"stray-{customer}", customer=customer, value=3,
                                    timestamp=int(time.time()))
    return customers


def failing_first(monkeypatch, error: Exception) -> list[str]:
    """The customers Stripe's meter is asked about; asking about the first raises `error`."""
    real, asked = stripe_api.meter_usage, []

    def flaky(**query):
        asked.append(query["customer"])
        if len(asked) == 1:
            raise error
        return real(**query)

    monkeypatch.setattr(stripe_api, "meter_usage", flaky)
    return asked


@pytest.fixture
def asked(monkeypatch):
    """The customers Stripe's meter is asked about; it times out on the first."""
    return failing_first(monkeypatch, stripe_api.Retryable("Stripe timed out"))


def test_a_stripe_error_for_one_tenant_does_not_stop_the_others(two_metered, asked, caplog):
    result = reconcile.reconcile_day(day=datetime.now(UTC).date())
    failed, answered = ([t for t, c in two_metered.items() if c == asked[i]] for i in (0, 1))
    assert (result.failed, result.differ) == (failed, 1)
    assert [d.tenant_id for d in selectors.meter_discrepancies()] == answered
    assert f"ALERT billing: tenant {failed[0]} on " in caplog.text


def test_a_tenant_stripe_refuses_is_alerted_and_not_asked_again(two_metered, monkeypatch, caplog):
    """A refusal (a customer Stripe no longer knows, say) would only be refused again: it is
    an ALERT, and not handed to the retrying task as Stripe being away is."""
    asked = failing_first(monkeypatch, stripe_api.Refused("No such customer"))
    result = reconcile.reconcile_day(day=datetime.now(UTC).date())
    refused = next(t for t, c in two_metered.items() if c == asked[0])
    assert (result.failed, result.differ) == ([], 1)
    assert f"ALERT billing: tenant {refused} on " in caplog.text and "Stripe refused" in caplog.text


def test_the_daily_task_checks_a_tenant_stripe_failed_for_again(two_metered, asked, monkeypatch):
    """The daily run hands each tenant Stripe failed for to a task of its own, retried
    until Stripe answers."""
    monkeypatch.setattr(reconcile, "reconcile_yesterday", lambda: reconcile.reconcile_day(day=datetime.now(UTC).date()))
    again = []
    monkeypatch.setattr(tasks.reconcile_tenant, "delay", lambda *args: again.append(tasks.reconcile_tenant(*args)))
    assert tasks.reconcile_meter() == 1
    assert again == [True]
    assert sorted(d.tenant_id for d in selectors.meter_discrepancies()) == sorted(two_metered)


@pytest.fixture
def unacknowledged(transactional_db, fake, settings):
    """A tenant whose one window Stripe recorded while our worker died before its
    acknowledgement: Stripe counts 9 calls today, we have acknowledged none yet."""
    settings.AKA_METER_WINDOW_SECONDS = 1
    tenant, _ = factories.make_tenant("Late")
    accounts.customer_ensure(tenant_id=tenant.pk)
    sent_unacknowledged(tenant, 9)
    return tenant


def test_a_day_flagged_only_for_a_late_acknowledgement_is_resolved_by_the_next_run(unacknowledged, monkeypatch):
    """Flagged while the window waited for its acknowledgement, the day stayed on the staff
    console for good once it came. The next daily run checks it again and resolves it; a
    day still differing stays flagged, alerted once for the same totals."""
    today = datetime.now(UTC).date()
    before = discrepancies()
    assert reconcile.reconcile_day(day=today).differ == 1
    [flagged] = selectors.meter_discrepancies()
    assert (flagged.ours, flagged.stripes) == (0, 9.0)
    stranger, _ = factories.make_tenant("Still off")
    stranger_customer = accounts.customer_ensure(tenant_id=stranger.pk)
    stripe_api.meter_event_send(identifier="stray", customer=stranger_customer, value=2, timestamp=int(time.time()))
    assert reconcile.reconcile_day(day=today).differ == 2
    MeterWindow.objects.for_tenant(unacknowledged).update(next_attempt_at=timezone.now())
    drain()  # the resend meets Stripe's record of it: acknowledged
    tomorrow = today + timedelta(days=1)
    monkeypatch.setattr(reconcile, "reconcile_yesterday", lambda: reconcile.reconcile_day(day=tomorrow))
    assert tasks.reconcile_meter() == 1
    assert [d.tenant_id for d in selectors.meter_discrepancies()] == [stranger.pk]
    resolved = MeterDiscrepancy.objects.for_tenant(unacknowledged).get()
    assert resolved.resolved_at is not None and resolved.day == today
    assert (resolved.ours, resolved.stripes) == (9, 9.0)   # the totals that agreed
    assert discrepancies() == before + 2   # each flag alerted once, not at each check
    # Staff resolve the stranger's day; checked again with the same totals, it stays resolved.
    MeterDiscrepancy.objects.for_tenant(stranger).update(resolved_at=timezone.now())
    assert reconcile.reconcile_tenant(tenant_id=stranger.pk, day=today) is True
    assert not selectors.meter_discrepancies().exists() and discrepancies() == before + 2
    # Past the re-checking days, nothing is asked of Stripe again.
    asked = failing_first(monkeypatch, AssertionError("asked about a day past re-checking"))
    assert reconcile.recheck_flagged(today=today + timedelta(days=reconcile.RECHECK_DAYS + 1)) == []
    assert asked == []


def test_meter_usage_maps_the_sdks_errors(metered, monkeypatch):
    import stripe

    def timeout(*args, **kwargs):
        raise stripe.APIConnectionError("timed out")

    monkeypatch.setattr(stripe_api.client().v1.billing.meters.event_summaries, "list", timeout)
    with pytest.raises(stripe_api.Retryable):
        stripe_api.meter_usage(meter_id=accounts.meter_id(), customer=metered[1], start=0, end=86400)
