"""The whole path with a real Celery worker (beat included) and Redis: calls through the
gateway, the ledger, the meter outbox, the Stripe fake. Exactly N billable calls are
exactly N on the meter, through Stripe failing for a while and a worker killed between
sending an event and recording that Stripe took it."""

import os
import subprocess
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import httpx
import pytest
from django.conf import settings

from apps.billing.models import BillingAccount, CallRecord, MeterWindow
from apps.billing.stripe_fake import Fault
from apps.core.redis import sync_client
from tests.billing.conftest import WEBHOOK_SECRET
from tests.live import ROOT, _die_with_parent, _python, kill_group, stop_group

METER_EVENTS = "/v1/billing/meter_events"
BODY = {"model": "gpt-4o-mini", "max_tokens": 8, "messages": [{"role": "user", "content": "how are fees computed?"}]}


class Worker:
    """`celery worker -B` on the test database and the test Redis database (its broker and
    the fake's state), with the fake standing in for Stripe."""

    def __init__(self) -> None:
        db = settings.DATABASES["default"]
        self.folder = tempfile.mkdtemp(prefix="billing-worker-")
        self.env = {**os.environ, "PYTHONPATH": str(ROOT),
                    "DATABASE_URL": f"postgresql://{db['USER']}@{quote(db['HOST'], safe='')}/{db['NAME']}",
                    "REDIS_URL": settings.REDIS_URL, "AKA_STRIPE_FAKE": "1", "STRIPE_SECRET_KEY": "",
                    "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET, "AKA_METER_WINDOW_SECONDS": "1",
                    "AKA_METER_OUTBOX_EVERY": "0.5", "AKA_METER_RETRY_BASE": "0.2", "AKA_METER_RETRY_MAX": "1",
                    "AKA_METER_LEASE_SECONDS": "3", "AKA_PERIOD_CLOSE_EVERY": "3600"}
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [_python(), "-m", "celery", "-A", "akaplatform", "worker", "-B", "--schedule",
             os.path.join(self.folder, f"beat-{uuid.uuid4().hex[:6]}"), "--pool", "solo", "--loglevel", "WARNING",
             "--without-mingle", "--without-gossip", "--without-heartbeat"],
            cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            preexec_fn=_die_with_parent)  # a killed test run leaves no worker behind

    def kill(self) -> None:
        """SIGKILL to the worker and its beat: no chance to record anything."""
        kill_group(self.proc)

    def stop(self) -> None:
        if self.proc:
            stop_group(self.proc, timeout=15)


@pytest.fixture
def worker(live, fake):
    sync_client().delete("celery")  # nothing left over from another test for this worker
    found = Worker()
    found.start()
    yield found
    found.stop()


def calls(live, n: int) -> list[int]:
    with httpx.Client(base_url=live.url, limits=httpx.Limits(max_connections=n), timeout=60) as client, \
            ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda _: client.post("/v1/chat/completions", json=BODY, headers={
            "authorization": f"Bearer {live.raw_key}", "x-aka-cache": "off"}).status_code, range(n)))


def customer_of(live, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = (BillingAccount.objects.for_tenant(live.tenant).exclude(stripe_customer_id="")
                 .values_list("stripe_customer_id", flat=True).first())
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError("the worker never created the tenant's Stripe customer")


def metered(live, fake, expected: int, timeout: float = 90.0) -> int:
    """The fake's meter total for the tenant once every window is settled (or the deadline)."""
    customer = customer_of(live)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        unsettled = MeterWindow.objects.for_tenant(live.tenant).exclude(state=MeterWindow.State.ACKED).count()
        unstamped = CallRecord.objects.for_tenant(live.tenant).filter(billable=True, meter_window=None).count()
        if not unsettled and not unstamped and fake.usage(customer) >= expected:
            break
        time.sleep(0.2)
    time.sleep(1.5)  # a few more outbox runs: a double send would show now
    return fake.usage(customer)


def test_n_concurrent_calls_are_n_on_the_meter(worker, live, fake):
    assert calls(live, 30) == [200] * 30
    rows = live.records(expected=30)
    assert (len(rows), sum(r.billable for r in rows)) == (30, 30)
    assert metered(live, fake, 30) == 30
    windows = MeterWindow.objects.for_tenant(live.tenant)
    assert sum(windows.values_list("quantity", flat=True)) == 30
    assert len(fake.meter_events()) == windows.count()


def test_stripe_failing_for_a_while_then_recovering_still_bills_exactly_n(worker, live, fake):
    fake.fail(Fault.TIMEOUT, times=6, path=METER_EVENTS)
    fake.fail(Fault.SERVER_ERROR, seconds=5, path=METER_EVENTS)
    assert calls(live, 20) == [200] * 20
    time.sleep(1)
    assert calls(live, 15) == [200] * 15
    assert metered(live, fake, 35) == 35
    assert MeterWindow.objects.for_tenant(live.tenant).filter(attempts__gt=1).exists()


def test_a_worker_killed_between_send_and_ack_does_not_double_count(worker, live, fake):
    fake.fail(Fault.HANG_AFTER, times=1, path=METER_EVENTS)  # Stripe records the event, the answer never comes
    assert calls(live, 25) == [200] * 25
    deadline = time.monotonic() + 60
    while not fake.meter_events():
        assert time.monotonic() < deadline, "the worker never sent a meter event"
        time.sleep(0.1)
    worker.kill()
    [window] = MeterWindow.objects.for_tenant(live.tenant).filter(state=MeterWindow.State.SENDING)
    worker.start()
    assert metered(live, fake, 25) == 25
    window.refresh_from_db()
    assert (window.state, window.attempts) == (MeterWindow.State.ACKED, 2)
    assert [e["identifier"] for e in fake.meter_events()].count(window.identifier) == 1
