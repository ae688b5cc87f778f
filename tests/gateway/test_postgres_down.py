"""PostgreSQL down: new calls get a 503 in the client's own error shape, with Retry-After,
never an answer the ledger cannot take; a key the process still has cached does not get
round it; and once PostgreSQL is back the gateway serves again by itself (its ORM
connections broke with the restart and must not stay broken).

The gateway runs on a private PostgreSQL (bench/private.py) that the test stops and
starts; nothing shared is touched."""

import json
import os
import signal
import subprocess
import time

import httpx
import psycopg
import pytest
from django.conf import settings

from bench.private import PrivateServices
from tests.live import ROOT, _python, start_gateway, start_production_server

SEED = """
from apps.providers.catalog import sync_from_seed
from apps.tenants import services as t
sync_from_seed()
tenant, owner = t.tenant_create(name="down", owner_email="down@test.local", owner_password=None, slug="down")
t.tenant_set_rate_limits(tenant=tenant, rpm=0, key_rpm=0)
print(t.api_key_issue(tenant=tenant, name="k", created_by=owner)[1])
"""


@pytest.fixture(scope="module")
def private(simulator, tmp_path_factory):
    services = PrivateServices(prefix="aka-pgdown-")
    try:
        services.postgres_init()
        env = {"DATABASE_URL": services.database_url, "REDIS_URL": settings.REDIS_URL, "DJANGO_DEBUG": "1",
               "PYTHONPATH": str(ROOT)}
        run = {"cwd": ROOT, "env": {**os.environ, **env}, "check": True, "capture_output": True,
               "text": True}
        subprocess.run([_python(), "manage.py", "migrate", "--noinput", "-v", "0"], **run)
        key = subprocess.run([_python(), "manage.py", "shell", "-c", SEED], **run).stdout.strip().splitlines()[-1]
        url, stop = start_gateway(database_url=services.database_url, redis_url=settings.REDIS_URL,
                                  simulator_url=simulator, extra_env={
                                      "AKA_KEY_CACHE_TTL": "3", "AKA_CATALOG_TTL": "3",
                                      "AKA_LEDGER_SPOOL_DIR": str(tmp_path_factory.mktemp("spool"))})
        yield services, url, key
        stop()
    finally:
        services.close()


def chat(url: str, key: str, **headers) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", timeout=30, headers={"authorization": f"Bearer {key}", **headers},
                      json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Where is my card?"}]})


def message(url: str, key: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/messages", timeout=30, headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
                      json={"model": "claude-haiku-4-5", "max_tokens": 32,
                            "messages": [{"role": "user", "content": "Where is my card?"}]})


def ledger(services: PrivateServices) -> list[tuple[str, int, bool]]:
    with psycopg.connect(services.database_url) as conn:
        return conn.execute("SELECT request_id, status_code, billable FROM billing_callrecord").fetchall()


def test_postgres_down_is_503_in_the_clients_shape_and_the_gateway_comes_back(private):
    services, url, key = private
    served = [chat(url, key)]
    assert served[0].status_code == 200  # the key is now in the process's cache for 3 s
    services.postgres_stop()

    refused = chat(url, key)
    assert refused.status_code == 503, refused.text
    assert refused.headers["retry-after"] == "1" and refused.headers["x-request-id"]
    assert refused.json()["error"]["code"] == "database_unavailable"
    assert set(refused.json()["error"]) == {"message", "type", "param", "code"}
    # The cache skipped and the key cached: nothing would touch the database before the
    # answer, and still no answer the ledger could not take.
    bypass = chat(url, key, **{"x-aka-cache": "off"})
    assert (bypass.status_code, bypass.json()["error"]["code"]) == (503, "database_unavailable")
    anthropic = message(url, key)
    assert anthropic.status_code == 503
    assert anthropic.json() == {"type": "error", "error": {"type": "overloaded_error",
                                                           "message": anthropic.json()["error"]["message"]},
                                "request_id": anthropic.headers["request-id"]}

    time.sleep(3)  # the key's snapshot is stale now: its reload goes through the ORM
    services.postgres_start()
    deadline = time.monotonic() + 30
    while (answer := chat(url, key)).status_code != 200:
        assert answer.status_code == 503, answer.text  # never a 500 on the way back
        assert time.monotonic() < deadline, "the gateway did not come back by itself"
        time.sleep(0.5)
    served.append(answer)
    served.append(message(url, key))
    assert served[-1].status_code == 200

    delivered = {r.headers["x-request-id"] for r in served}
    deadline = time.monotonic() + 30
    while not delivered <= {rid for rid, _, _ in ledger(services)}:
        assert time.monotonic() < deadline, "a served call has no ledger row"
        time.sleep(0.5)
    assert {rid for rid, _, billable in ledger(services) if billable} == delivered
    assert json.loads(httpx.get(f"{url}/healthz", headers={"host": "127.0.0.1"}).text)["database"] == "ok"


def test_a_row_queued_in_a_process_killed_with_9_survives_it(private, simulator, tmp_path):
    """The row of a call answered just as PostgreSQL went away waits in the writer (it
    retries before spooling); the process is killed -9 meanwhile. Its journal holds the
    row, and the next process started on the same spool moves it into the ledger."""
    services, _, key = private
    spool = str(tmp_path)
    env = {"DATABASE_URL": services.database_url, "REDIS_URL": settings.REDIS_URL, "DJANGO_DEBUG": "1",
           "AKA_SIMULATOR_URL": simulator, "AKA_LEDGER_SPOOL_DIR": spool,
           "AKA_KEY_CACHE_TTL": "120", "AKA_CATALOG_TTL": "120"}
    url, proc = start_production_server(env=env)
    try:
        assert chat(url, key).status_code == 200  # every snapshot the next call needs is now warm
        services.postgres_stop()
        # Nothing touches the database before this answer: it is served, its row queued.
        answered = chat(url, key, **{"x-aka-cache": "off"})
        assert answered.status_code == 200, answered.text
        request_id = answered.headers["x-request-id"]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        services.postgres_start()
    assert request_id not in {rid for rid, _, _ in ledger(services)}  # nothing reached the database before the kill

    _, successor = start_production_server(env=env)  # starting up, it adopts the dead process's journal
    try:
        deadline = time.monotonic() + 30
        while request_id not in {rid for rid, _, _ in ledger(services)}:
            assert time.monotonic() < deadline, "the killed process's queued row was lost"
            time.sleep(0.5)
        assert (request_id, 200, True) in ledger(services)
    finally:
        successor.terminate()
        successor.wait(timeout=30)
