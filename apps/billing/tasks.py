"""Billing's Celery tasks: thin, take ids, safe to run twice."""

from datetime import date

from akaplatform.celery import app
from apps.core.redis import sync_client

from . import accounts, invoices, outbox, partitions, reconcile, stripe_api

# A tenant missing its Stripe customer gets one creation task per this many seconds (the
# task retries by itself; this keeps a long Stripe outage from piling tasks up).
CUSTOMER_TASK_EVERY = 300


@app.task(name="billing.customer_create", autoretry_for=(Exception,), retry_backoff=5, retry_backoff_max=600,
          retry_jitter=True, max_retries=None)
def customer_create(tenant_id: int) -> str | None:
    """The tenant's Stripe customer and subscription (scheduled after sign-up; retried until done)."""
    return accounts.customer_ensure(tenant_id=tenant_id)


@app.task(name="billing.subscription_sync", autoretry_for=(Exception,), retry_backoff=5, retry_backoff_max=600,
          retry_jitter=True, max_retries=None)
def subscription_sync(tenant_id: int) -> None:
    """Moves the tenant's Stripe subscription to its plan's price (after a plan change)."""
    accounts.subscription_sync(tenant_id=tenant_id)


@app.task(name="billing.meter_outbox")
def meter_outbox() -> dict:
    """Collects billable calls into windows and sends what is due (beat, every few seconds)."""
    if stripe_api.enabled():
        for tenant_id in accounts.customers_missing():
            if sync_client().set(f"billing:customer-task:{tenant_id}", 1, nx=True, ex=CUSTOMER_TASK_EVERY):
                customer_create.delay(tenant_id)
    return vars(outbox.run())


@app.task(name="billing.period_close")
def period_close() -> int:
    """Makes the invoices of the period that ended (beat, hourly: idempotent)."""
    return invoices.close_ended()


@app.task(name="billing.reconcile")
def reconcile_meter() -> int:
    """Yesterday's meter totals in Stripe against ours (beat, daily), and the days still
    flagged before it again; a tenant Stripe failed for is checked again by a task of its own."""
    yesterday = reconcile.reconcile_yesterday()
    _check_again(yesterday)   # first: the re-checks must not cost them their retry
    rechecked = reconcile.recheck_flagged(today=yesterday.day)
    for done in rechecked:
        _check_again(done)
    return yesterday.differ + sum(done.differ for done in rechecked)


def _check_again(done: reconcile.Reconciled) -> None:
    for tenant_id in done.failed:
        reconcile_tenant.delay(tenant_id, done.day.isoformat())


@app.task(name="billing.reconcile_tenant", autoretry_for=(stripe_api.Retryable,), retry_backoff=60,
          retry_backoff_max=3600, retry_jitter=True, max_retries=None)
def reconcile_tenant(tenant_id: int, day: str) -> bool:
    """One tenant's day that the daily run could not check (retried while Stripe is away)."""
    return reconcile.reconcile_tenant(tenant_id=tenant_id, day=date.fromisoformat(day))


@app.task(name="billing.ledger_partitions")
def ledger_partitions() -> dict:
    """Makes the ledger's coming months' partitions and drops those past retention (beat)."""
    return vars(partitions.maintain())
