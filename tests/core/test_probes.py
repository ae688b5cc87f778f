"""/healthz and /metrics through the ASGI app production serves, beside Django's stack."""

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import override_settings

ROOT = Path(__file__).resolve().parent.parent.parent


def get(path: str, host: bytes = b"127.0.0.1") -> tuple[int, dict, bytes]:
    from akaplatform.asgi import application

    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "query_string": b"", "root_path": "",
             "headers": [(b"host", host)], "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 5000),
             "scheme": "http", "http_version": "1.1", "asgi": {"version": "3.0"}}
    asyncio.run(application(scope, receive, send))
    start, body = sent
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body["body"]


@pytest.mark.django_db(transaction=True)
@override_settings(ALLOWED_HOSTS=["127.0.0.1"])
def test_healthz_answers_through_the_asgi_app():
    status, headers, body = get("/healthz")
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"status": "ok", "database": "ok", "redis": "ok"}


@override_settings(ALLOWED_HOSTS=["127.0.0.1"])
def test_metrics_answer_through_the_asgi_app():
    status, headers, body = get("/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    assert b"# TYPE aka_gateway_requests_total counter" in body


@override_settings(ALLOWED_HOSTS=["127.0.0.1"])
@pytest.mark.parametrize("path", ["/healthz", "/metrics"])
def test_a_probe_with_a_host_not_allowed_is_refused(path):
    status, _, body = get(path, host=b"evil.example")
    assert status == 400
    assert json.loads(body)["error"]["code"] == "invalid_host"


PROBE_THEN_LIST_MODULES = """
import asyncio, sys
from akaplatform.asgi import application
async def main():
    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}
    statuses = []
    async def send(message):
        if message["type"] == "http.response.start":
            statuses.append(message["status"])
    for path in ("/healthz", "/metrics"):
        await application({"type": "http", "method": "GET", "path": path, "query_string": b"", "root_path": "",
                           "headers": [(b"host", b"127.0.0.1")], "server": ("127.0.0.1", 80),
                           "client": ("127.0.0.1", 5000), "scheme": "http", "http_version": "1.1",
                           "asgi": {"version": "3.0"}}, receive, send)
    print(statuses, sorted(m for m in ("akaplatform.urls", "drf_spectacular.views", "stripe") if m in sys.modules))
asyncio.run(main())
"""


def test_probes_do_not_load_the_sites_urlconf():
    """A worker that serves only /v1/ and its probes never holds the admin, DRF or Stripe."""
    out = subprocess.run([sys.executable, "-c", PROBE_THEN_LIST_MODULES], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT), "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
                                           "DJANGO_SETTINGS_MODULE": "akaplatform.settings"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[200, 200] []"
