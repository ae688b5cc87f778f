"""Daily reconciliation: for each tenant with a Stripe customer, the meter's total for a
day (Stripe's event summaries) against the calls we had acknowledged for that day.
A difference is flagged three ways: a MeterDiscrepancy row (the staff console's list),
aka_billing_discrepancies_total, and an error log line."""

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from django.db.models import Sum

from apps.core import metrics

from . import accounts, stripe_api
from .models import BillingAccount, MeterDiscrepancy, MeterWindow

log = logging.getLogger(__name__)


@dataclass
class Reconciled:
    day: date
    differ: int = 0                                   # tenants flagged
    failed: list[int] = field(default_factory=list)   # tenants Stripe was away for (worth asking again)


def reconcile_day(*, day: date) -> Reconciled:
    """Compares one UTC day for every tenant. Stripe failing for one tenant does not stop
    the others: it is logged, and a tenant Stripe was away for is returned, for the task to
    check again (a refusal would only be refused again)."""
    result = Reconciled(day=day)
    if not stripe_api.enabled():
        return result
    meter = accounts.meter_id()
    for account in BillingAccount.objects.unscoped_across_all_tenants().exclude(stripe_customer_id=""):
        try:
            result.differ += _compare(account=account, day=day, meter=meter)
        except stripe_api.Retryable as exc:
            result.failed.append(account.tenant_id)
            log.error("ALERT billing: tenant %s on %s not reconciled, Stripe failed: %s", account.tenant_id, day, exc)
        except stripe_api.Refused as exc:   # asking again gets the same refusal
            log.error("ALERT billing: tenant %s on %s not reconciled, Stripe refused: %s", account.tenant_id, day, exc)
    return result


def reconcile_yesterday() -> Reconciled:
    return reconcile_day(day=(datetime.now(UTC) - timedelta(days=1)).date())


def reconcile_tenant(*, tenant_id: int, day: date) -> bool:
    """Compares one UTC day for one tenant (a tenant the day's run could not check);
    True when it differs. Stripe's errors propagate, for the task to retry."""
    account = BillingAccount.objects.for_tenant(tenant_id).exclude(stripe_customer_id="").first()
    if account is None or not stripe_api.enabled():
        return False
    return _compare(account=account, day=day, meter=accounts.meter_id())


def _compare(*, account: BillingAccount, day: date, meter: str) -> bool:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    end = start + timedelta(days=1)
    ours = (MeterWindow.objects.for_tenant(account.tenant_id)
            .filter(state=MeterWindow.State.ACKED, event_timestamp__gte=int(start.timestamp()),
                    event_timestamp__lt=int(end.timestamp()))
            .aggregate(n=Sum("quantity"))["n"] or 0)
    stripes = stripe_api.meter_usage(meter_id=meter, customer=account.stripe_customer_id,
                                     start=int(start.timestamp()), end=int(end.timestamp()))
    if stripes == ours:
        return False
    MeterDiscrepancy.objects.for_tenant(account.tenant_id).update_or_create(
        tenant_id=account.tenant_id, day=day, defaults={"ours": ours, "stripes": stripes, "resolved_at": None})
    metrics.BILLING_DISCREPANCIES.inc()
    log.error("ALERT billing: tenant %s on %s: we acknowledged %s calls, Stripe's meter has %s",
              account.tenant_id, day, ours, stripes)
    return True
