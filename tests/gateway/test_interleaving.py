"""One tenant's bad calls interleaved with another's good ones, streamed and not, on
shared keep-alive connections: the good tenant loses no row and no stream, and the bad
tenant's calls are recorded too (with values normalised for their columns)."""

import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from apps.billing.models import CallRecord
from apps.tenants.models import Tenant
from tests import factories

ROUNDS = 12
NO_CACHE = {"x-aka-cache": "off"}


def good_call(client, key: str, i: int):
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"good question {i}"}],
            "max_tokens": 16, "stream": i % 2 == 1}
    response = client.post("/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}", **NO_CACHE})
    complete = response.status_code == 200 and (not body["stream"] or response.text.endswith("data: [DONE]\n\n"))
    return response.status_code, complete, response.headers.get("x-request-id")


def bad_calls(client, key: str, i: int):
    auth = {"authorization": f"Bearer {key}", **NO_CACHE}
    statuses = []
    for model, content in (("m" * 101, "hi"), ("gpt\x00-4o-mini", "hi"), ("gpt-4o-mini", f"nul \x00 prompt {i}")):
        response = client.post("/v1/chat/completions", headers=auth,
                               json={"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": 8})
        statuses.append(response.status_code)
    return statuses


def test_bad_calls_of_one_tenant_cost_another_no_row_and_no_stream(live):
    bad_tenant, _ = factories.make_tenant("Noisy")
    Tenant.objects.filter(pk=bad_tenant.pk).update(log_prompts=True)
    _, bad_key = factories.make_key(bad_tenant)
    with httpx.Client(base_url=live.url, timeout=10, limits=httpx.Limits(max_connections=4)) as client, \
            ThreadPoolExecutor(4) as pool:
        good, bad = [], []
        for i in range(ROUNDS):  # interleaved, so the two tenants' rows share ledger batches
            good += [pool.submit(good_call, client, live.raw_key, 2 * i + j) for j in (0, 1)]
            bad.append(pool.submit(bad_calls, client, bad_key, i))
        good, bad = [f.result() for f in good], [f.result() for f in bad]

    assert [(status, complete) for status, complete, _ in good] == [(200, True)] * len(good)
    rows = live.records(expected=len(good), timeout=10)
    assert sorted(r.request_id for r in rows) == sorted(request_id for _, _, request_id in good)
    assert all(r.billable and r.status_code == 200 for r in rows)

    assert {tuple(s) for s in bad} == {(400, 400, 200)}
    deadline = time.monotonic() + 10
    while len(bad_rows := list(CallRecord.objects.for_tenant(bad_tenant))) < 3 * ROUNDS and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(bad_rows) == 3 * ROUNDS
    assert sum(r.billable for r in bad_rows) == ROUNDS
    assert all(len(r.model_requested) <= 100 and "\x00" not in r.model_requested for r in bad_rows)
    assert {r.prompt for r in bad_rows if r.billable} == {f"nul \ufffd prompt {i}" for i in range(ROUNDS)}


def test_a_rejected_call_then_a_stream_on_the_same_connection(live):
    with httpx.Client(base_url=live.url, timeout=10) as client:
        auth = {"authorization": f"Bearer {live.raw_key}", **NO_CACHE}
        for _ in range(5):
            rejected = client.post("/v1/chat/completions", headers=auth,
                                   json={"model": "m" * 101, "messages": [{"role": "user", "content": "hi"}]})
            streamed = client.post("/v1/chat/completions", headers=auth,
                                   json={"model": "gpt-4o-mini", "stream": True, "max_tokens": 8,
                                         "messages": [{"role": "user", "content": "then a stream"}]})
            assert rejected.status_code == 400
            assert streamed.status_code == 200 and streamed.text.endswith("data: [DONE]\n\n")
    rows = live.records(expected=10, timeout=10)
    assert sorted((r.status_code, r.billable) for r in rows) == [(200, True)] * 5 + [(400, False)] * 5
