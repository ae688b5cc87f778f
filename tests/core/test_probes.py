"""/healthz and /metrics through the ASGI app production serves, beside Django's stack."""

import asyncio
import json

import pytest
from django.test import override_settings

from tests.asgi import http_scope
from tests.live import served_then_loaded


def get(path: str, host: bytes = b"127.0.0.1") -> tuple[int, dict, bytes]:
    from akaplatform.asgi import application

    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(application(http_scope("GET", path, [(b"host", host)]), receive, send))
    start, body = sent
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body["body"]


@pytest.mark.django_db(transaction=True)
@override_settings(ALLOWED_HOSTS=["127.0.0.1"])
def test_healthz_answers_through_the_asgi_app():
    status, headers, body = get("/healthz")
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"status": "ok", "database": "ok", "redis": "ok"}


@pytest.mark.django_db(transaction=True)
@override_settings(ALLOWED_HOSTS=["127.0.0.1"])
def test_healthz_reports_degraded_but_serving_when_redis_is_unreachable():
    from apps.core import redis as core_redis

    with override_settings(REDIS_URL="unix:///nonexistent/redis.sock"):
        core_redis.async_client.drain()
        status, _, body = get("/healthz")
    core_redis.async_client.drain()
    assert status == 200  # the gateway serves without Redis; keep it in rotation
    assert json.loads(body)["status"] == "degraded"
    assert json.loads(body)["redis"].startswith("failing")


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


def test_probes_do_not_load_the_sites_urlconf(test_database_url, settings):
    """A worker that serves only /v1/ and its probes never holds the admin, DRF or Stripe."""
    statuses, loaded = served_then_loaded([("/healthz", {}), ("/metrics", {})],
                                          ["akaplatform.urls", "drf_spectacular.views", "stripe"],
                                          {"DATABASE_URL": test_database_url, "REDIS_URL": settings.REDIS_URL})
    assert (statuses, loaded) == ([200, 200], [])
