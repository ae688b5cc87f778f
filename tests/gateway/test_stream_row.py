"""A delivered stream's ledger row is built once: the row promised to the journal before
its last event is the row recorded. Run through the real ASGI handler in this process, so
the row builder can be counted."""

import asyncio

import orjson
import pytest

from apps.billing import services as billing_services
from apps.billing.models import CallRecord
from apps.core.lifecycle import run_shutdown
from apps.gateway.handler import GatewayHandler
from apps.providers.catalog import sync_from_seed
from tests import factories


def stream_through_handler(raw_key: str) -> tuple[int, bytes]:
    body = orjson.dumps({"model": "gpt-4o-mini", "max_tokens": 20, "stream": True,
                         "messages": [{"role": "user", "content": "Count to five."}]})
    sent, requested = [], []

    async def receive():
        if not requested:
            requested.append(body)
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # a client that stays to the end

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "query_string": b"", "root_path": "",
             "headers": [(b"content-type", b"application/json"), (b"authorization", f"Bearer {raw_key}".encode())],
             "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 5000), "scheme": "http", "http_version": "1.1",
             "asgi": {"version": "3.0"}}

    async def run():
        await GatewayHandler()(scope, receive, send)
        await run_shutdown()  # the record stage; then the pools close, as a worker's would

    asyncio.run(run())
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


@pytest.mark.django_db(transaction=True)
def test_a_delivered_streams_row_is_built_once(simulator, settings, monkeypatch):
    settings.AKA_SIMULATOR_URL = simulator
    sync_from_seed()
    tenant, _ = factories.make_tenant()
    _, raw = factories.make_key(tenant)
    built = []
    build = billing_services.ledger_row
    monkeypatch.setattr(billing_services, "ledger_row", lambda **kw: built.append(kw["facts"]) or build(**kw))

    status, body = stream_through_handler(raw)

    assert status == 200 and body.rstrip().endswith(b"data: [DONE]")
    [row] = CallRecord.objects.for_tenant(tenant)
    assert row.stream and row.billable and row.status_code == 200
    assert len(built) == 1
