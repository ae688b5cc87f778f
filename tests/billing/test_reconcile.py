"""Daily reconciliation: the meter's totals in Stripe against what we acknowledged."""

import time
from datetime import UTC, datetime

import pytest

from apps.billing import accounts, reconcile, selectors, stripe_api
from apps.billing.models import MeterDiscrepancy
from apps.core import metrics
from tests import factories
from tests.billing.helpers import drain, ledger_rows


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
    assert reconcile.reconcile_day(day=datetime.now(UTC).date()) == 0
    assert not selectors.meter_discrepancies().exists()
    assert discrepancies() == before


def test_a_difference_is_flagged_with_a_row_a_metric_and_a_log(metered, caplog):
    tenant, customer = metered
    stripe_api.meter_event_send(identifier="stray", customer=customer, value=3, timestamp=int(time.time()))
    before = discrepancies()
    today = datetime.now(UTC).date()
    assert reconcile.reconcile_day(day=today) == 1
    [found] = selectors.meter_discrepancies()
    assert (found.tenant_id, found.day, found.ours, found.stripes) == (tenant.pk, today, 12, 15.0)
    assert discrepancies() == before + 1
    assert "Stripe's meter has 15" in caplog.text
    assert MeterDiscrepancy.objects.for_tenant(tenant).count() == 1
