"""A bug of ours still answers in the client's error shape, with a request id, and is
counted in /metrics; an admission check that fails unexpectedly (the database, a Redis
script) is answered as such a failure of the call under way, whose row is recorded with
what its upstream cost: run through the real ASGI handler in this process."""

import asyncio

import httpx
import orjson
import psycopg
import pytest
from redis.exceptions import ResponseError

from apps.billing import standing
from apps.billing.models import CallRecord
from apps.core import metrics, pg
from apps.core.llm import Usage
from apps.gateway import pipeline
from apps.providers.catalog import amodels, sync_from_seed
from apps.tenants import ratelimit
from tests import factories
from tests.gateway.inprocess import through_handler


def counted(endpoint: str, status: str) -> float:
    return metrics.REQUESTS.labels(endpoint, status)._value.get()


@pytest.fixture
def broken_admission(monkeypatch):
    async def admit(call, headers):
        raise RuntimeError("a bug in admission")

    monkeypatch.setattr(pipeline, "admit", admit)


@pytest.mark.parametrize("path, endpoint, headers", [
    ("/v1/chat/completions", "chat.completions", []),
    ("/v1/messages", "messages", [(b"anthropic-version", b"2023-06-01")]),
])
def test_an_unexpected_exception_answers_500_in_the_clients_shape(broken_admission, path, endpoint, headers):
    requests, unhandled = counted(endpoint, "500"), metrics.UNHANDLED.labels(endpoint)._value.get()
    request = orjson.dumps({"model": "gpt-4o-mini", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})
    status, response_headers, body = through_handler(path, request, headers)
    assert status == 500
    assert response_headers["x-request-id"].startswith("req_")
    error = orjson.loads(body)
    if endpoint == "messages":
        assert error == {"type": "error", "error": {"type": "api_error",
                                                    "message": "The gateway failed to process the request."},
                         "request_id": response_headers["request-id"]}
    else:
        assert error == {"error": {"message": "The gateway failed to process the request.", "type": "server_error",
                                   "param": None, "code": "internal_error"}}
    assert counted(endpoint, "500") == requests + 1
    assert metrics.UNHANDLED.labels(endpoint)._value.get() == unhandled + 1



async def _reload_fails(*, tenant_id):
    """The quota count, when its tenant's standing snapshot went stale and the database is gone."""
    raise psycopg.OperationalError("connection failed: server closed the connection unexpectedly")


async def _script_fails(*, keys, args):
    """The rate-limit script on a key of the wrong type (re-raised, not failed open)."""
    raise ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("check, name, fails, status, error", [
    (standing, "quota_count", _reload_fails, 503, {
        "message": pg.unavailable().message, "type": "service_unavailable_error", "param": None,
        "code": "database_unavailable"}),
    (ratelimit, "_script", _script_fails, 500, {
        "message": "The gateway failed to process the request.", "type": "server_error", "param": None,
        "code": "internal_error"}),
])
def test_a_failed_admission_check_answers_the_call_and_records_its_upstream_cost(
        sim, settings, monkeypatch, check, name, fails, status, error):
    settings.AKA_SIMULATOR_URL = sim
    monkeypatch.setattr(pg, "outage", pg.Outage())   # the outage a 503 reports ends with the test
    monkeypatch.setattr(check, name, fails)
    sync_from_seed()
    tenant, _ = factories.make_tenant()
    _, raw = factories.make_key(tenant)

    answered, headers, body = through_handler("/v1/chat/completions", orjson.dumps(
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Where is my card?"}]}),
        [(b"authorization", f"Bearer {raw}".encode()), (b"x-aka-cache", b"off")])

    assert (answered, orjson.loads(body)) == (status, {"error": error})
    # The call under way answers, not a new one made up for the error: its own id, and its row.
    [row] = CallRecord.objects.for_tenant(tenant)
    assert (row.request_id, row.status_code, row.billable, row.price_cents) == (
        headers["x-request-id"], status, False, 0)
    # The upstream had the request: it was let finish, and is recorded at what it charged.
    assert httpx.get(f"{sim}/_sim/stats").json()["completed"] == {"gpt-4o-mini": 1}
    model = asyncio.run(amodels())["gpt-4o-mini"]
    assert row.model_served == "gpt-4o-mini" and row.completion_tokens > 0
    assert row.provider_cost_micros == model.cost_micros(Usage(row.prompt_tokens, row.completion_tokens))
