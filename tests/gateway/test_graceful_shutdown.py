"""The production server under a supervisor: SIGTERM lets an in-flight stream finish and
its ledger row be written before the process exits; a worker killed with -9 is replaced
while the other keeps serving."""

import os
import signal
import threading
import time
from urllib.parse import quote

import httpx
import psutil
import pytest
from django.conf import settings

from apps.billing.models import CallRecord
from apps.providers.catalog import sync_from_seed
from tests import factories
from tests.conftest import _wait_for_catalog
from tests.live import start_production_server


def server_env(simulator: str) -> dict[str, str]:
    db = settings.DATABASES["default"]
    return {"DATABASE_URL": f"postgresql://{db['USER']}@{quote(db['HOST'], safe='')}/{db['NAME']}",
            "REDIS_URL": settings.REDIS_URL, "AKA_SIMULATOR_URL": simulator, "AKA_SHUTDOWN_SECONDS": "20",
            "AKA_KEY_CACHE_TTL": "0.5", "AKA_CATALOG_TTL": "0.05"}


@pytest.fixture
def tenant_key(transactional_db):
    sync_from_seed()
    tenant, _ = factories.make_tenant("Graceful")
    return tenant, factories.make_key(tenant)[1]


def test_sigterm_finishes_the_stream_and_writes_its_row(tenant_key, simulator):
    tenant, key = tenant_key
    url, proc = start_production_server(env=server_env(simulator), workers=1)
    _wait_for_catalog(url, key)
    body = {"model": "gpt-4o-mini", "stream": True, "max_tokens": 60,
            "messages": [{"role": "user", "content": "Tell me a story [[pace:ttft=50 tps=25]]"}]}
    result, first = {}, threading.Event()

    def read() -> None:
        with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=60,
                          headers={"authorization": f"Bearer {key}", "x-aka-cache": "off"}) as response:
            result["request_id"] = response.headers["x-request-id"]
            text = ""
            for chunk in response.iter_text():
                first.set()
                text += chunk
            result["text"] = text

    reader = threading.Thread(target=read)
    reader.start()
    assert first.wait(30)
    proc.send_signal(signal.SIGTERM)
    reader.join(60)
    assert proc.wait(60) is not None  # it exited by itself
    assert result["text"].rstrip().endswith("data: [DONE]")
    row = CallRecord.objects.for_tenant(tenant).get(request_id=result["request_id"])
    assert (row.status_code, row.billable, row.stream) == (200, True, True)


def workers_of(proc) -> list[psutil.Process]:
    """The server's live worker processes (not multiprocessing's resource tracker)."""
    return [p for p in psutil.Process(proc.pid).children()
            if p.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in " ".join(p.cmdline())]


def test_a_worker_killed_with_9_is_replaced_and_the_other_keeps_serving(tenant_key, simulator):
    _, key = tenant_key
    url, proc = start_production_server(env=server_env(simulator), workers=2)
    try:
        _wait_for_catalog(url, key)
        workers = workers_of(proc)
        assert len(workers) == 2
        os.kill(workers[0].pid, signal.SIGKILL)
        statuses = [httpx.get(f"{url}/healthz", timeout=5).status_code for _ in range(20)]
        assert statuses == [200] * 20
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            alive = workers_of(proc)
            if len(alive) == 2 and workers[0].pid not in {p.pid for p in alive}:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the killed worker was not replaced")
    finally:
        proc.terminate()
        proc.wait(30)
