"""Daily reconciliation: for each tenant with a Stripe customer, the meter's total for a
day (Stripe's event summaries) against the calls we had acknowledged for that day.
A difference is flagged three ways: a MeterDiscrepancy row (the staff console's list),
aka_billing_discrepancies_total, and an error log line.

A flag is often only timing: a window Stripe recorded but whose acknowledgement had not
come back yet (a timed-out send, retried later), or an event Stripe's summaries did not
count yet (they are eventually consistent). So each day's run checks the days still
flagged in the last RECHECK_DAYS again, and a day whose totals agree is resolved: a
flag nobody could clear buried the real ones on the console."""

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from django.db.models import Sum

from apps.core import metrics

from . import accounts, stripe_api
from .models import BillingAccount, MeterDiscrepancy, MeterWindow

log = logging.getLogger(__name__)
RECHECK_DAYS = 7


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
        _check(result, account, day, meter)
    return result


def reconcile_yesterday() -> Reconciled:
    return reconcile_day(day=(datetime.now(UTC) - timedelta(days=1)).date())


def recheck_flagged(*, today: date) -> list[Reconciled]:
    """Checks again each day before `today` (back to RECHECK_DAYS) still flagged for a
    tenant; one result per day, its tenants Stripe failed for to be asked again."""
    results: dict[date, Reconciled] = {}
    if not stripe_api.enabled():
        return []
    meter = accounts.meter_id()
    flagged = (MeterDiscrepancy.objects.unscoped_across_all_tenants()  # the daily run: every tenant
               .filter(resolved_at__isnull=True, day__gte=today - timedelta(days=RECHECK_DAYS), day__lt=today)
               .order_by("day", "tenant_id").values_list("tenant_id", "day"))
    for tenant_id, day in flagged:
        if (account := _account(tenant_id)) is not None:
            _check(results.setdefault(day, Reconciled(day=day)), account, day, meter)
    return list(results.values())


def _check(result: Reconciled, account: BillingAccount, day: date, meter: str) -> None:
    try:
        result.differ += _compare(account=account, day=day, meter=meter)
    except stripe_api.Retryable as exc:
        result.failed.append(account.tenant_id)
        log.error("ALERT billing: tenant %s on %s not reconciled, Stripe failed: %s", account.tenant_id, day, exc)
    except stripe_api.Refused as exc:   # asking again gets the same refusal
        log.error("ALERT billing: tenant %s on %s not reconciled, Stripe refused: %s", account.tenant_id, day, exc)


def reconcile_tenant(*, tenant_id: int, day: date) -> bool:
    """Compares one UTC day for one tenant (a tenant the day's run could not check);
    True when it differs. Stripe's errors propagate, for the task to retry."""
    account = _account(tenant_id)
    if account is None or not stripe_api.enabled():
        return False
    return _compare(account=account, day=day, meter=accounts.meter_id())


def _account(tenant_id: int) -> BillingAccount | None:
    return BillingAccount.objects.for_tenant(tenant_id).exclude(stripe_customer_id="").first()


def _compare(*, account: BillingAccount, day: date, meter: str) -> bool:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    end = start + timedelta(days=1)
    ours = (MeterWindow.objects.for_tenant(account.tenant_id)
            .filter(state=MeterWindow.State.ACKED, event_timestamp__gte=int(start.timestamp()),
                    event_timestamp__lt=int(end.timestamp()))
            .aggregate(n=Sum("quantity"))["n"] or 0)
    stripes = stripe_api.meter_usage(meter_id=meter, customer=account.stripe_customer_id,
                                     start=int(start.timestamp()), end=int(end.timestamp()))
    flags = MeterDiscrepancy.objects.for_tenant(account.tenant_id).filter(day=day)
    if stripes == ours:
        # With the totals that agree: the same pair differing again later is a new flag.
        flags.filter(resolved_at__isnull=True).update(resolved_at=datetime.now(UTC), ours=ours, stripes=stripes)
        return False
    if flags.filter(ours=ours, stripes=stripes).exists():
        return True   # flagged already with these totals (and maybe resolved by staff): no second alert
    MeterDiscrepancy.objects.for_tenant(account.tenant_id).update_or_create(
        tenant_id=account.tenant_id, day=day, defaults={"ours": ours, "stripes": stripes, "resolved_at": None})
    metrics.BILLING_DISCREPANCIES.inc()
    log.error("ALERT billing: tenant %s on %s: we acknowledged %s calls, Stripe's meter has %s",
              account.tenant_id, day, ours, stripes)
    return True
