"""Billing's Celery tasks: thin, take ids, safe to run twice."""

from celery import shared_task

from . import accounts, invoices, outbox, reconcile


@shared_task(name="billing.customer_create", autoretry_for=(Exception,), retry_backoff=5, retry_backoff_max=600,
             retry_jitter=True, max_retries=None)
def customer_create(tenant_id: int) -> str | None:
    """The tenant's Stripe customer and subscription (scheduled after sign-up; retried until done)."""
    return accounts.customer_ensure(tenant_id=tenant_id)


@shared_task(name="billing.subscription_sync", autoretry_for=(Exception,), retry_backoff=5, retry_backoff_max=600,
             retry_jitter=True, max_retries=None)
def subscription_sync(tenant_id: int) -> None:
    """Moves the tenant's Stripe subscription to its plan's price (after a plan change)."""
    accounts.subscription_sync(tenant_id=tenant_id)


@shared_task(name="billing.meter_outbox")
def meter_outbox() -> dict:
    """Collects billable calls into windows and sends what is due (beat, every few seconds)."""
    for tenant_id in accounts.customers_missing():
        customer_create.delay(tenant_id)
    return vars(outbox.run())


@shared_task(name="billing.period_close")
def period_close() -> int:
    """Makes the invoices of the period that ended (beat, hourly: idempotent)."""
    return invoices.close_ended()


@shared_task(name="billing.reconcile")
def reconcile_meter() -> int:
    """Yesterday's meter totals in Stripe against ours (beat, daily)."""
    return reconcile.reconcile_yesterday()
