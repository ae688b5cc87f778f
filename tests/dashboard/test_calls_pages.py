"""The call log: filters, cursor pagination through htmx, and the call's own page."""

import json
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.http import QueryDict
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.billing.models import CallRecord
from apps.dashboard import selectors
from apps.dashboard.forms import CallFilter
from apps.dashboard.rollups import rollups_refresh
from apps.tenants.selectors import api_key_list
from tests import factories
from tests.dashboard import ledger

pytestmark = pytest.mark.django_db


def request_ids(body: str) -> list[str]:
    return re.findall(r'href="/calls/(req_\w+)/"', body)


def test_filters_narrow_the_log(client, party):
    key, _ = factories.make_key(party.tenant, "batch")
    now = timezone.now()
    ledger.calls(party.tenant, n=60, start=now - timedelta(hours=5), span=timedelta(hours=4), api_key=key)
    ledger.calls(party.tenant, n=20, start=now - timedelta(hours=5), span=timedelta(hours=4), seed=9)
    rollups_refresh()
    client.force_login(party.bob)
    rows = CallRecord.objects.for_tenant(party.tenant)
    cases = {
        "cache=semantic": rows.filter(cache="semantic"),
        "status=error": rows.exclude(status_code=200),
        f"key={key.pk}": rows.filter(api_key=key),
        "model=gpt-4o": rows.filter(model_served="gpt-4o"),
        "route=cheap&cache=miss": rows.filter(route="cheap", cache="miss"),
    }
    for query, expected in cases.items():
        body = client.get(f"/calls/?{query}").content.decode()
        wanted = list(expected.order_by("-created_at", "-id").values_list("request_id", flat=True)[:50])
        assert request_ids(body) == wanted and wanted, query
    since = (now - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    body = client.get(f"/calls/?since={since}").content.decode()
    assert set(request_ids(body)) == set(rows.filter(created_at__gte=now.replace(second=0, microsecond=0)
                                                     - timedelta(hours=2)).values_list("request_id", flat=True))


def test_the_model_filter_finds_a_model_first_used_since_the_last_rollup_refresh(client, party):
    rollups_refresh()
    now = timezone.now()
    ledger.calls(party.tenant, n=10, start=now - timedelta(minutes=5), span=timedelta(minutes=4))
    client.force_login(party.bob)
    body = client.get("/calls/?model=gpt-4o-mini").content.decode()
    expected = CallRecord.objects.for_tenant(party.tenant).filter(model_served="gpt-4o-mini")
    assert set(request_ids(body)) == set(expected.values_list("request_id", flat=True)) and expected


def test_the_model_filter_finds_failed_calls_by_the_model_they_asked_for(client, party):
    """A call that failed before any model answered is named by the model it asked for,
    in the choices (the rollups) and in the filter alike."""
    now = timezone.now()
    [failed, *_] = ledger.calls(party.tenant, n=3, start=now - timedelta(hours=3), span=timedelta(hours=1))
    CallRecord.objects.for_tenant(party.tenant).filter(pk=failed.pk).update(
        model_served="", model_requested="gpt-9", status_code=404, billable=False)
    rollups_refresh()
    assert "gpt-9" in selectors.models_seen(tenant=party.tenant)
    client.force_login(party.bob)
    assert request_ids(client.get("/calls/?model=gpt-9").content.decode()) == [failed.request_id]


def plan_nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from plan_nodes(child)


def test_a_keys_call_page_reads_one_index_in_page_order(party):
    """The log filtered by a key walks an index in the keyset order and stops after a page:
    no sort of all the key's rows (bench/ledger: 87 ms for a busy key's day at 10M rows).
    Sorting is priced out, so the plan sorts only if no index gives that order."""
    key, _ = factories.make_key(party.tenant, "batch")
    ledger.calls(party.tenant, n=60, start=timezone.now() - timedelta(hours=2), span=timedelta(hours=1), api_key=key)
    filters = CallFilter(QueryDict(f"key={key.pk}"), queryset=selectors.calls_of(tenant=party.tenant),
                         keys=api_key_list(tenant=party.tenant), models=[])
    assert filters.is_valid()
    first, _ = selectors.calls_page(calls=filters.qs)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute("SET LOCAL enable_incremental_sort = off")
    for before in (None, (first[-1].created_at, first[-1].pk)):
        with CaptureQueriesContext(connection) as queries:
            rows, _ = selectors.calls_page(calls=filters.qs, before=before)
        assert rows and {row.api_key_id for row in rows} == {key.pk}
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (FORMAT JSON) " + queries.captured_queries[-1]["sql"])
            plan = cursor.fetchone()[0]
        nodes = list(plan_nodes((json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]))
        assert not [n for n in nodes if n["Node Type"] in ("Sort", "Incremental Sort")], before
        assert any("api_key_id" in n.get("Index Cond", "") for n in nodes), before


def test_htmx_pages_through_the_log_without_repeats(client, party):
    ledger.calls(party.tenant, n=400, start=timezone.now() - timedelta(hours=1), span=timedelta(minutes=50))
    client.force_login(party.alice)
    seen, url = [], "/calls/?cache=miss"
    body = client.get(url).content.decode()
    seen += request_ids(body)
    while (more := re.search(r'hx-get="(/calls/\?[^"]*before=[^"]+)"', body)):
        body = client.get(more.group(1).replace("&amp;", "&"), HTTP_HX_REQUEST="true",
                          HTTP_HX_TARGET="calls-more").content.decode()
        assert "<html" not in body
        seen += request_ids(body)
    expected = CallRecord.objects.for_tenant(party.tenant).filter(cache="miss").order_by("-created_at", "-id")
    assert seen == list(expected.values_list("request_id", flat=True)) and len(seen) > 50


def test_a_call_shows_its_prompt_only_when_prompt_logging_is_on(client, party):
    call = ledger.calls(party.tenant, n=1, start=timezone.now(), span=timedelta(0), prompt="What is my PIN?")[0]
    client.force_login(party.bob)
    body = client.get(f"/calls/{call.request_id}/").content.decode()
    assert "What is my PIN?" not in body and "Prompt logging is off" in body
    assert call.model_served in body and call.request_id in body
    party.tenant.log_prompts = True
    party.tenant.save()
    assert "What is my PIN?" in client.get(f"/calls/{call.request_id}/").content.decode()


def test_a_bad_filter_is_an_answer_not_an_error(client, party):
    client.force_login(party.alice)
    response = client.get("/calls/?since=yesterday&cache=nope&before=garbage")
    assert response.status_code == 200 and "No calls match" in response.content.decode()
    assert client.get("/calls/?before=2026-02-30T10:00:00_12").status_code == 200
    assert client.get("/?period=custom&start=2026-02-30&end=2026-13-01").status_code == 200
    # "²" is a digit to str.isdigit, not to int(); and a period ending in year 9999 has no day after it.
    assert client.get("/calls/?before=2024-01-01T00:00:00%2B00:00_%C2%B2").status_code == 200
    assert client.get("/?period=custom&start=2024-01-01&end=9999-12-31").status_code == 200
