"""/metrics as Prometheus scrapes it, after real calls; and the JSON log lines carry the
request id of the call they are about."""

import json
import logging

import httpx
from prometheus_client.parser import text_string_to_metric_families

from apps.core import logs
from apps.core.redis import sync_client
from tests.cache.test_cache_gateway import entries


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    text = httpx.get(f"{url}/metrics").text
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_requests_latency_cache_models_and_upstream_errors(live, sim):
    before = scrape(live.url)
    auth = {"authorization": f"Bearer {live.raw_key}"}
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "What are your opening hours?"}]}
    with httpx.Client(base_url=live.url, headers=auth, timeout=30) as client:
        assert client.post("/v1/chat/completions", json=chat).status_code == 200       # miss
        live.records(expected=1)
        assert entries(live, timeout=10)  # stored after its ledger row: the exact hit needs it first
        assert client.post("/v1/chat/completions", json=chat).status_code == 200       # exact hit
        failing = {**chat, "messages": [{"role": "user", "content": "x [[fault:500 model=gpt-4o-mini]]"}]}
        assert client.post("/v1/chat/completions", json=failing,
                           headers={"x-aka-cache": "off"}).status_code == 200         # served by a fallback
    live.records(expected=3)
    after = scrape(live.url)

    def grew(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("aka_gateway_requests_total", endpoint="chat.completions", status="200") == 3
    assert grew("aka_gateway_latency_seconds_count", endpoint="chat.completions") == 3
    assert grew("aka_cache_lookups_total", outcome="exact") == 1
    assert grew("aka_gateway_served_total", model="claude-haiku-4-5", fallback="yes") == 1
    assert grew("aka_upstream_errors_total", provider="openai", kind="upstream_error") == 3  # 1 try + 2 retries
    assert ("aka_celery_queue_length", (("queue", "celery"),)) in after
    assert ("aka_ledger_spool_pending_files", ()) in after


def test_a_json_log_line_names_its_request():
    record = logging.LogRecord("apps.gateway", logging.WARNING, __file__, 1, "upstream %s failed", ("x",), None)
    token = logs.request_id.set("req_abc")
    try:
        line = json.loads(logs.JsonFormatter().format(record))
    finally:
        logs.request_id.reset(token)
    assert line["request_id"] == "req_abc" and line["message"] == "upstream x failed"
    assert line["level"] == "WARNING" and line["logger"] == "apps.gateway" and "time" in line


def test_the_celery_queue_gauge_reads_redis(db):
    sync_client().delete("celery")
    sync_client().rpush("celery", b"{}", b"{}")
    try:
        from apps.core.metrics import render

        assert 'aka_celery_queue_length{queue="celery"} 2.0' in render().decode()
    finally:
        sync_client().delete("celery")
