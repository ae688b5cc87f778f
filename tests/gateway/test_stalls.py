"""Upstream stalls are bounded per model: time to the first byte and between chunks. A
model that stalls past its own timeout before answering falls back to the next; after
the first byte the stream ends with an error event instead of hanging."""

from urllib.parse import quote

import openai
import pytest
from django.conf import settings

from apps.providers.catalog import sync_from_seed
from apps.providers.upstreams import stall_timeout
from tests import factories
from tests.conftest import Live, _wait_for_catalog, _wait_until_the_gateway_is_quiet
from tests.live import start_gateway


@pytest.fixture(scope="module")
def stall_gateway(django_db_setup, simulator):
    db = settings.DATABASES["default"]
    url, stop = start_gateway(
        database_url=f"postgresql://{db['USER']}@{quote(db['HOST'], safe='')}/{db['NAME']}",
        redis_url=settings.REDIS_URL, simulator_url=simulator,
        extra_env={"AKA_UPSTREAM_READ_TIMEOUT": "20", "AKA_UPSTREAM_STALL_TIMEOUTS": "gpt-4o-mini=0.5",
                   "AKA_KEY_CACHE_TTL": "0.5", "AKA_CATALOG_TTL": "0.05"})
    yield url
    stop()


@pytest.fixture
def live(transactional_db, stall_gateway):
    sync_from_seed()
    tenant, owner = factories.make_tenant("Stall Tenant")
    key, raw = factories.make_key(tenant, "stall")
    _wait_for_catalog(stall_gateway, factories.make_key(factories.make_tenant("probe")[0])[1])
    yield Live(url=stall_gateway, tenant=tenant, key=key, raw_key=raw, owner=owner)
    _wait_until_the_gateway_is_quiet()


def sdk(live) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live.url}/v1", api_key=live.raw_key, max_retries=0, timeout=15)


def test_stall_timeouts_are_per_model(settings):
    settings.AKA_UPSTREAM_READ_TIMEOUT = 20
    settings.AKA_UPSTREAM_STALL_TIMEOUTS = "gpt-4o-mini=0.5, o3 = 120"
    assert [stall_timeout(m) for m in ("gpt-4o-mini", "o3", "gpt-4o")] == [0.5, 120.0, 20.0]


def test_a_model_slower_than_its_stall_timeout_falls_back(live, sim):
    # Every model takes 1.5 s to its first byte: over gpt-4o-mini's 0.5 s, under the default.
    raw = sdk(live).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "card? [[pace:ttft=1500]]"}])
    assert raw.headers["x-aka-model"] == "claude-haiku-4-5"
    [row] = live.records()
    assert (row.model_served, row.status_code, row.attempts) == ("claude-haiku-4-5", 200, 2)


def test_a_stream_that_stalls_between_chunks_ends_with_an_error(live, sim):
    stream = sdk(live).chat.completions.create(
        model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "fees? [[pace:ttft=0 tps=1]]"}])
    received = []
    with pytest.raises(openai.APIError):
        for chunk in stream:
            received.append(chunk)
    assert received  # the first chunk came in time; the next did not
    [row] = live.records()
    assert (row.model_served, row.status_code, row.error_type, row.billable) == (
        "gpt-4o-mini", 504, "upstream_stream_stalled", False)
