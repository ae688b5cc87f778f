"""A delivered stream's ledger row is built once: the row promised to the journal before
its last event is the row recorded. Run through the real ASGI handler in this process, so
the row builder can be counted."""

import orjson
import pytest

from apps.billing import services as billing_services
from apps.billing.models import CallRecord
from apps.providers.catalog import sync_from_seed
from tests import factories
from tests.gateway.inprocess import through_handler


@pytest.mark.django_db(transaction=True)
def test_a_delivered_streams_row_is_built_once(simulator, settings, monkeypatch):
    settings.AKA_SIMULATOR_URL = simulator
    sync_from_seed()
    tenant, _ = factories.make_tenant()
    _, raw = factories.make_key(tenant)
    built = []
    build = billing_services.ledger_row
    monkeypatch.setattr(billing_services, "ledger_row", lambda **kw: built.append(kw["facts"]) or build(**kw))

    status, _, body = through_handler("/v1/chat/completions", orjson.dumps({
        "model": "gpt-4o-mini", "max_tokens": 20, "stream": True, "messages": [{"role": "user", "content": "Count to five."}]}),
        [(b"authorization", f"Bearer {raw}".encode())])

    assert status == 200 and body.rstrip().endswith(b"data: [DONE]")
    [row] = CallRecord.objects.for_tenant(tenant)
    assert row.stream and row.billable and row.status_code == 200
    assert len(built) == 1
