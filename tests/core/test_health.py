import pytest
from django.test import override_settings


@pytest.mark.django_db(transaction=True)
def test_healthz_reports_database_and_redis(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "redis": "ok"}


@pytest.mark.django_db(transaction=True)
def test_healthz_reports_degraded_but_serving_when_redis_is_unreachable(client):
    from apps.core import redis as core_redis

    with override_settings(REDIS_URL="unix:///nonexistent/redis.sock"):
        core_redis.async_client.drain()
        response = client.get("/healthz")
    core_redis.async_client.drain()
    assert response.status_code == 200  # the gateway serves without Redis; keep it in rotation
    assert response.json()["status"] == "degraded"
    assert response.json()["redis"].startswith("failing")


def test_metrics_are_in_prometheus_format(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert "# TYPE aka_gateway_requests_total counter" in response.content.decode()
