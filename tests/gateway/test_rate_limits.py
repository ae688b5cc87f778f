"""Rate limits as the gateway applies them: malformed calls use no quota, calls refused
for the limit do not reach the upstream once the tenant is near it, and whatever a
refused call did cost upstream is recorded."""

from concurrent.futures import ThreadPoolExecutor

import httpx

from apps.billing.models import CallRecord
from apps.tenants.models import Tenant

NO_CACHE = {"x-aka-cache": "off"}
BODY = {"model": "gpt-4o-mini", "max_tokens": 8, "messages": [{"role": "user", "content": "how are fees computed?"}]}


def limit_key(live, rpm: int) -> None:
    Tenant.objects.filter(pk=live.tenant.pk).update(key_rate_limit_rpm=rpm)


def post(client, live, **kw):
    return client.post("/v1/chat/completions", headers={"authorization": f"Bearer {live.raw_key}", **NO_CACHE}, **kw)


def test_malformed_calls_use_no_quota(live):
    limit_key(live, 3)
    with httpx.Client(base_url=live.url) as client:
        assert [post(client, live, content=b"{not json").status_code for _ in range(5)] == [400] * 5
        assert [post(client, live, json={"model": "gpt-4o-mini"}).status_code for _ in range(2)] == [400] * 2
        assert [post(client, live, json=BODY).status_code for _ in range(3)] == [200] * 3
        refused = post(client, live, json=BODY)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(refused.headers["retry-after"]) <= 20


def test_calls_refused_near_the_limit_never_reach_the_upstream(live, sim):
    limit_key(live, 3)
    with httpx.Client(base_url=live.url) as client:
        statuses = [post(client, live, json=BODY).status_code for _ in range(8)]
    assert statuses == [200] * 3 + [429] * 5
    assert httpx.get(f"{sim}/_sim/stats").json()["requests"] == {"gpt-4o-mini": 3}
    rows = live.records(expected=8)
    assert sorted((r.status_code, r.billable, r.provider_cost_micros > 0) for r in rows) == (
        [(200, True, True)] * 3 + [(429, False, False)] * 5)


def test_a_refused_call_records_what_the_upstream_charged(live, sim):
    """A burst from a quiet start overlaps the check with the upstream call, so some
    refused calls reach the upstream: each of those waits for its answer and says what it
    cost. The upstream takes 300 ms, so the refusals come while those calls are in flight."""
    limit_key(live, 4)
    slow = {**BODY, "messages": [{"role": "user", "content": "how are fees computed? [[pace:ttft=300 tps=1000]]"}]}
    with httpx.Client(base_url=live.url, limits=httpx.Limits(max_connections=10)) as client, ThreadPoolExecutor(10) as pool:
        statuses = list(pool.map(lambda _: post(client, live, json=slow).status_code, range(10)))
    assert sorted(statuses) == [200] * 4 + [429] * 6
    upstream_calls = sum(httpx.get(f"{sim}/_sim/stats").json()["requests"].values())
    rows = live.records(expected=10)
    assert len(rows) == 10
    charged = [r for r in rows if r.provider_cost_micros > 0]
    assert len(charged) == upstream_calls
    assert all(r.model_served == "gpt-4o-mini" and r.prompt_tokens > 0 for r in charged)
    assert CallRecord.objects.for_tenant(live.tenant).filter(billable=True).count() == 4
