"""Daily reconciliation: for each tenant with a Stripe customer, the meter's total for a
day (Stripe's event summaries) against the calls we had acknowledged for that day.
A difference is flagged three ways: a MeterDiscrepancy row (the staff console's list),
aka_billing_discrepancies_total, and an error log line."""

import logging
from datetime import UTC, date, datetime, timedelta

from django.db.models import Sum

from apps.core import metrics

from . import accounts, stripe_api
from .models import BillingAccount, MeterDiscrepancy, MeterWindow

log = logging.getLogger(__name__)


def reconcile_day(*, day: date) -> int:
    """Compares one UTC day for every tenant; returns how many tenants differ."""
    if not stripe_api.enabled():
        return 0
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    end = start + timedelta(days=1)
    meter = accounts.meter_id()
    differ = 0
    for account in BillingAccount.objects.unscoped_across_all_tenants().exclude(stripe_customer_id=""):
        ours = (MeterWindow.objects.for_tenant(account.tenant_id)
                .filter(state=MeterWindow.State.ACKED, event_timestamp__gte=int(start.timestamp()),
                        event_timestamp__lt=int(end.timestamp()))
                .aggregate(n=Sum("quantity"))["n"] or 0)
        stripes = stripe_api.meter_usage(meter_id=meter, customer=account.stripe_customer_id,
                                         start=int(start.timestamp()), end=int(end.timestamp()))
        if stripes == ours:
            continue
        differ += 1
        MeterDiscrepancy.objects.for_tenant(account.tenant_id).update_or_create(
            tenant_id=account.tenant_id, day=day, defaults={"ours": ours, "stripes": stripes, "resolved_at": None})
        metrics.BILLING_DISCREPANCIES.inc()
        log.error("ALERT billing: tenant %s on %s: we acknowledged %s calls, Stripe's meter has %s",
                  account.tenant_id, day, ours, stripes)
    return differ


def reconcile_yesterday() -> int:
    return reconcile_day(day=(datetime.now(UTC) - timedelta(days=1)).date())
