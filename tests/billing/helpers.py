"""Ledger rows made directly (as the gateway's writer would insert them) and the outbox
driven until it has nothing left to do."""

import time
import uuid
from datetime import datetime

from asgiref.sync import async_to_sync
from django.db import connection

from apps.billing import outbox, stripe_api
from apps.billing.models import CallRecord, MeterWindow


def ledger_rows(tenant, n: int, *, price_cents: int = 10, billable: bool = True, at: datetime | None = None,
                collected_at: datetime | None = None, model: str = "gpt-4o-mini", cache: str = "miss") -> list[CallRecord]:
    """`n` ledger rows made at `at` (now if None). With `at`, the outbox collects them as
    if it ran at `collected_at` (default: `at`), stamping their window and invoice."""
    rows = [CallRecord(tenant_id=tenant.pk, request_id="req_" + uuid.uuid4().hex, endpoint="chat.completions",
                       model_requested=model, model_served=model, provider="openai", price_cents=price_cents if billable else 0,
                       billable=billable, status_code=200 if billable else 502, latency_ms=1.0, cache=cache)
            for _ in range(n)]
    made = CallRecord.objects.for_tenant(tenant).bulk_create(rows)
    if at is not None:
        CallRecord.objects.for_tenant(tenant).filter(pk__in=[r.pk for r in made]).update(created_at=at)
        outbox.collect(at=collected_at or at)
    return made


def sent_unacknowledged(tenant, calls: int) -> None:
    """`calls` billable calls in a window claimed and sent to Stripe, whose worker then died
    before writing the acknowledgement: the window stays `sending` until its lease ends."""
    ledger_rows(tenant, calls)
    while not (claimed := outbox.claim(10)):
        outbox.collect()
    [window] = claimed
    stripe_api.meter_event_send(identifier=window.identifier, customer=window.customer, value=window.quantity,
                                timestamp=window.timestamp)


def unfinished() -> int:
    windows = MeterWindow.objects.unscoped_across_all_tenants().filter(
        state__in=[MeterWindow.State.PENDING, MeterWindow.State.SENDING]).count()
    return windows + outbox.backlog()["unstamped_rows"]


def drain(timeout: float = 30.0) -> None:
    """Runs the outbox until every billable row is in an acknowledged (or refused) window."""
    deadline = time.monotonic() + timeout
    while unfinished():
        assert time.monotonic() < deadline, f"outbox never drained: {outbox.backlog()}"
        outbox.run(max_seconds=5)
        time.sleep(0.1)


def streamed(response) -> bytes:
    """A streamed response's body, read asynchronously as the ASGI server reads it."""
    async def read() -> bytes:
        return b"".join([chunk async for chunk in response.streaming_content])

    return async_to_sync(read)()


def stored_in(tenant) -> dict[str, int]:
    """Partition name -> the tenant's ledger rows in it, as PostgreSQL routed them."""
    with connection.cursor() as cur:
        cur.execute("SELECT tableoid::regclass::text, count(*) FROM billing_callrecord WHERE tenant_id = %s "
                    "GROUP BY 1", [tenant.pk])
        return dict(cur.fetchall())
