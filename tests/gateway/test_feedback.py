"""POST /v1/feedback: a verdict on one of the tenant's own calls. Negative feedback on a
semantic hit stops that entry from being served to paraphrases (its exact prompt still
hits) and counts in the tenant's observed wrong-hit rate."""

import httpx
import pytest
from rest_framework.test import APIClient

from apps.routing.models import Feedback
from tests import factories
from tests.cache.test_cache_gateway import PIN, PIN_PARAPHRASE, ask, entries, sdk


def send(live, body, key=None) -> httpx.Response:
    return httpx.post(f"{live.url}/v1/feedback", json=body,
                      headers={"authorization": f"Bearer {key or live.raw_key}"})


def test_negative_feedback_on_a_semantic_hit_demotes_its_entry(live):
    client = sdk(live)
    ask(client, PIN)
    [entry] = entries(live)
    hit = ask(client, PIN_PARAPHRASE)
    assert hit.headers["x-aka-cache"] == "semantic"
    live.records(expected=2)

    answer = send(live, {"request_id": hit.headers["x-request-id"], "thumbs": "down", "comment": "wrong account"})

    assert answer.status_code == 200
    assert answer.json() == {"object": "feedback", "request_id": hit.headers["x-request-id"], "score": -1.0,
                             "cache_entry_demoted": True}
    [verdict] = Feedback.objects.for_tenant(live.tenant)
    assert (verdict.request_id, verdict.score, verdict.comment) == (hit.headers["x-request-id"], -1.0, "wrong account")
    entry.refresh_from_db()
    assert entry.demoted_at is not None
    assert ask(client, PIN_PARAPHRASE).headers["x-aka-cache"] == "miss"   # paraphrases are no longer served it
    assert ask(client, PIN).headers["x-aka-cache"] == "exact"             # its own prompt still is

    owner = APIClient()
    owner.force_login(live.owner)
    observed = owner.get("/api/settings/").json()
    assert (observed["semantic_hits_30d"], observed["semantic_hits_judged_wrong_30d"],
            observed["observed_wrong_hit_rate"]) == (1, 1, 1.0)
    page = owner.get("/settings/").content.decode()   # and beside the settings on the page
    assert "1 semantic hit, 1 of them called wrong by your feedback (100.0%)" in page


def test_positive_feedback_demotes_nothing_and_a_later_verdict_replaces_it(live):
    client = sdk(live)
    first = ask(client, PIN)
    live.records()
    request_id = first.headers["x-request-id"]
    assert send(live, {"request_id": request_id, "score": 0.5}).json()["cache_entry_demoted"] is False
    assert send(live, {"request_id": request_id, "thumbs": "up"}).status_code == 200
    assert [(f.request_id, f.score) for f in Feedback.objects.for_tenant(live.tenant)] == [(request_id, 1.0)]


def test_feedback_on_another_tenants_call_is_404_and_changes_nothing(live):
    client = sdk(live)
    ask(client, PIN)
    [entry] = entries(live)
    hit = ask(client, PIN_PARAPHRASE)
    live.records(expected=2)
    outsider, _ = factories.make_tenant("Outsider")
    _, outsider_key = factories.make_key(outsider)

    answer = send(live, {"request_id": hit.headers["x-request-id"], "thumbs": "down"}, key=outsider_key)

    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "call_not_found"
    assert Feedback.objects.for_tenant(outsider).count() == Feedback.objects.for_tenant(live.tenant).count() == 0
    entry.refresh_from_db()
    assert entry.demoted_at is None


@pytest.mark.parametrize("body, param", [
    ({"thumbs": "down"}, "request_id"),
    ({"request_id": "nope", "thumbs": "down"}, "request_id"),
    ({"request_id": "req_\x00", "thumbs": "up"}, "request_id"),     # was a 500: the database refuses NUL
    ({"request_id": "req_x"}, "score"),
    ({"request_id": "req_x", "score": 2}, "score"),
    ({"request_id": "req_x", "thumbs": "sideways"}, "score"),
    ({"request_id": "req_x", "score": -1, "thumbs": "down"}, "score"),
    ({"request_id": "req_x", "score": -1, "comment": "x" * 2001}, "comment"),
])
def test_malformed_feedback_is_a_400_naming_the_field(live, body, param):
    answer = send(live, body)
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == param
    assert answer.headers["x-request-id"].startswith("req_")
