"""Race and selective race through the real gateway, against a simulator of its own whose
strong model streams slowly (a few tokens a second) while the cheap one answers in a
moment: an accepted draft closes the strong stream, the simulator sees that request
cancelled, and the ledger has both costs; a strong stream cut after the draft was rejected
fails the call, which still records both costs. Also: an open circuit is skipped."""

import asyncio
import json
import time
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import httpx
import orjson
import pytest
from django.conf import settings

from apps.core.llm import Usage, estimated_tokens
from apps.providers.catalog import SEED_FILE, amodels, sync_from_seed
from apps.routing import breaker
from apps.routing.services import routing_settings_update
from tests import factories
from tests.conftest import Live, _wait_for_catalog, _wait_until_the_gateway_is_quiet
from tests.gateway.inprocess import half_open, routed_in_process
from tests.live import _python, start_gateway, start_server

CHEAP, STRONG = "gpt-4o-mini", "gpt-4o"
SUPPORT = "Where is my new debit card? I ordered it two weeks ago."
PROFILES = {CHEAP: {"ttft_ms": 300, "tokens_per_s": 0}, STRONG: {"ttft_ms": 20, "tokens_per_s": 8}}


@pytest.fixture(scope="module")
def paced(django_db_setup, django_db_blocker, tmp_path_factory):
    """(gateway URL, simulator URL): the strong model streams at 8 tokens a second."""
    seed = json.loads(SEED_FILE.read_text())
    for entry in seed["models"]:
        entry["sim"] = {**PROFILES.get(entry["id"], {"ttft_ms": 0, "tokens_per_s": 0}),
                        **({"dimensions": entry["sim"]["dimensions"]} if "dimensions" in entry.get("sim", {}) else {})}
    catalog = Path(tmp_path_factory.mktemp("race")) / "catalog.json"
    catalog.write_text(json.dumps(seed))
    sim_url, stop_sim = start_server([_python(), "-m", "simulator", "--host", "127.0.0.1", "--port", "{port}",
                                      "--catalog", str(catalog)], "/_sim/health", name="simulator",
                                     env={"AKA_SIMULATOR_FAST": ""})
    db = settings.DATABASES["default"]
    url, stop_gateway = start_gateway(
        database_url=f"postgresql://{db['USER']}@{quote(db['HOST'], safe='')}/{db['NAME']}",
        redis_url=settings.REDIS_URL, simulator_url=sim_url,
        extra_env={"AKA_KEY_CACHE_TTL": "0.5", "AKA_CATALOG_TTL": "0.05", "AKA_RETRY_BASE_DELAY": "0.01",
                   "AKA_BREAKER_FAILURES": "3", "AKA_BREAKER_COOLDOWN": "600"})
    yield url, sim_url
    stop_gateway()
    stop_sim()


@pytest.fixture
def racing(transactional_db, paced):
    url, sim_url = paced
    sync_from_seed()
    tenant, owner = factories.make_tenant("Racer")
    key, raw = factories.make_key(tenant)
    probe, _ = factories.make_tenant("Catalog probe")
    _wait_for_catalog(url, factories.make_key(probe)[1])
    assert httpx.post(f"{sim_url}/_sim/reset").status_code == 200
    yield Live(url=url, tenant=tenant, key=key, raw_key=raw, owner=owner), sim_url
    _wait_until_the_gateway_is_quiet()


def ask(live, content, **kw) -> httpx.Response:
    return httpx.post(f"{live.url}/v1/chat/completions", headers={"authorization": f"Bearer {live.raw_key}"},
                      json={"model": "auto", "messages": [{"role": "user", "content": content}], **kw}, timeout=30)


def sim_stats(sim_url) -> dict:
    return httpx.get(f"{sim_url}/_sim/stats").json()


def full_cost(sim_url, model_id: str, content: str) -> tuple[Usage, Decimal]:
    """What the whole answer of `model_id` costs (asked of the simulator directly)."""
    body = httpx.post(f"{sim_url}/v1/chat/completions", timeout=30,
                      json={"model": model_id, "messages": [{"role": "user", "content": content}]}).json()
    usage = Usage(body["usage"]["prompt_tokens"], body["usage"]["completion_tokens"])
    model = asyncio.run(amodels())[model_id]
    return usage, model.cost_micros(usage)


def test_race_serves_the_accepted_draft_and_cancels_the_strong_stream(racing):
    live, sim_url = racing
    routing_settings_update(tenant=live.tenant, speculation="race", exploration=0.0)
    answer = ask(live, SUPPORT)
    assert answer.status_code == 200
    assert (answer.headers["x-aka-model"], answer.headers["x-aka-speculation"]) == (CHEAP, "race:accepted")
    assert answer.json()["choices"][0]["message"]["content"].startswith(f"[{CHEAP}]")

    deadline = time.monotonic() + 5
    while sim_stats(sim_url)["cancelled"].get(STRONG) != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    seen = sim_stats(sim_url)
    assert seen["requests"] == {CHEAP: 1, STRONG: 1}
    assert seen["cancelled"] == {STRONG: 1} and STRONG not in seen["completed"]

    [row] = live.records()
    strong_usage, strong_whole = full_cost(sim_url, STRONG, SUPPORT)
    _, draft_whole = full_cost(sim_url, CHEAP, SUPPORT)
    strong_input = Decimal(strong_usage.prompt_tokens) * Decimal("2.5")
    assert (row.model_served, row.speculation, row.speculation_outcome, row.judge) == (
        CHEAP, "race", "accepted", "heuristic")
    assert row.draft_cost_micros == draft_whole
    # The cancelled strong call: its input, plus the output received before the cancel.
    assert strong_input <= row.strong_cost_micros < strong_whole
    assert row.provider_cost_micros == row.draft_cost_micros + row.strong_cost_micros
    assert (row.prompt_tokens, row.billable) == (strong_usage.prompt_tokens, True)


def test_race_serves_the_strong_answer_when_the_draft_is_rejected(racing):
    live, sim_url = racing
    routing_settings_update(tenant=live.tenant, speculation="race", exploration=0.0)
    answer = ask(live, SUPPORT, max_tokens=6)
    assert (answer.headers["x-aka-model"], answer.headers["x-aka-speculation"]) == (STRONG, "race:rejected")
    assert sim_stats(sim_url)["completed"] == {CHEAP: 1, STRONG: 1}
    [row] = live.records()
    served = Usage(row.prompt_tokens, row.completion_tokens)
    assert (row.speculation_outcome, row.completion_tokens) == ("rejected", 6)
    assert row.strong_cost_micros == served.prompt_tokens * Decimal("2.5") + served.completion_tokens * Decimal(10)
    assert row.provider_cost_micros == row.draft_cost_micros + row.strong_cost_micros


def race_in_process(live, sim_url, settings, monkeypatch, half_open_model: str | None = None,
                    **body) -> tuple[int, dict, bytes]:
    """A raced call run in this process, so that its circuit breakers can be read:
    (status, headers, body). Faults are armed before; every circuit closed before it, but
    `half_open_model`'s."""
    settings.AKA_SIMULATOR_URL = sim_url
    if half_open_model:
        half_open(monkeypatch, settings, half_open_model)
    else:
        monkeypatch.setattr(breaker, "_circuits", {})
    routing_settings_update(tenant=live.tenant, speculation="race", exploration=0.0)
    return routed_in_process(live, SUPPORT, **body)


def test_a_strong_stream_closed_after_it_started_answering_closes_its_half_open_circuit(racing, settings,
                                                                                       monkeypatch):
    """The strong model's circuit is half open and its stream is the probe. It started
    answering, then the accepted draft closed it: a healthy upstream, cut by us. Unreported,
    the probe stayed out and no call could use the strong model for one more cool-down."""
    live, sim_url = racing
    status, headers, _ = race_in_process(live, sim_url, settings, monkeypatch, STRONG)
    assert (status, headers["x-aka-model"], headers["x-aka-speculation"]) == (200, CHEAP, "race:accepted")
    assert sim_stats(sim_url)["requests"] == {CHEAP: 1, STRONG: 1}
    assert breaker.state(STRONG) == "closed"


def test_a_strong_stream_closed_before_it_answered_gives_its_probe_back(racing, settings, monkeypatch):
    """The strong model's circuit is half open and its stream is the probe. It stalls, and
    the accepted draft closes it before its first event: nothing was learnt of the model, so
    the next call may probe it at once instead of after one more cool-down."""
    live, sim_url = racing
    httpx.post(f"{sim_url}/_sim/faults", json={"model": STRONG, "kind": "stall", "times": 1})
    status, headers, _ = race_in_process(live, sim_url, settings, monkeypatch, STRONG)
    assert (status, headers["x-aka-model"], headers["x-aka-speculation"]) == (200, CHEAP, "race:accepted")
    assert sim_stats(sim_url)["faulted"] == {STRONG: 1}
    assert breaker.state(STRONG) == "half_open" and breaker.is_open(STRONG) is False


def test_a_race_whose_strong_stream_is_cut_after_the_draft_was_rejected_records_both_costs(racing, settings,
                                                                                          monkeypatch):
    """Run in this process, so that its circuit breakers can be read."""
    live, sim_url = racing
    settings.AKA_BREAKER_FAILURES = 1
    # The draft, cut at 24 tokens, is rejected at once; the strong stream (3 s for 24 tokens) is cut a third of the way.
    httpx.post(f"{sim_url}/_sim/faults", json={"model": STRONG, "kind": "cut", "times": 1})
    status, headers, body = race_in_process(live, sim_url, settings, monkeypatch, max_tokens=24)

    assert status == 502 and orjson.loads(body)["error"]["code"] == "upstream_error"
    [row] = live.records()
    assert (row.request_id, row.status_code, row.billable) == (headers["x-request-id"], 502, False)
    assert (row.speculation, row.speculation_outcome, row.judge_score) == ("race", "rejected", 0.05)
    prompt = full_cost(sim_url, STRONG, SUPPORT)[0].prompt_tokens
    catalog = asyncio.run(amodels())
    assert row.draft_cost_micros == catalog[CHEAP].cost_micros(Usage(prompt, 24))
    # The strong stream's input, and the output received before it was cut.
    strong = catalog[STRONG]
    assert strong.cost_micros(Usage(prompt, 0)) < row.strong_cost_micros < strong.cost_micros(Usage(prompt, 24))
    assert row.provider_cost_micros == row.draft_cost_micros + row.strong_cost_micros
    assert breaker.state(STRONG) == "open"


def test_a_race_whose_draft_fails_and_strong_stream_is_cut_bills_the_strong_input(racing, settings, monkeypatch):
    """No draft usage to measure the input by: the strong stream's input is estimated from
    the messages, not billed as 0."""
    live, sim_url = racing
    httpx.post(f"{sim_url}/_sim/faults", json={"model": CHEAP, "kind": "400", "times": 5})
    httpx.post(f"{sim_url}/_sim/faults", json={"model": STRONG, "kind": "cut", "times": 1})
    status, _, body = race_in_process(live, sim_url, settings, monkeypatch, max_tokens=24)

    assert status == 502 and orjson.loads(body)["error"]["code"] == "upstream_error"
    [row] = live.records()
    assert (row.speculation_outcome, row.draft_cost_micros) == ("draft_failed", 0)
    strong = asyncio.run(amodels())[STRONG]
    estimate = estimated_tokens(SUPPORT)
    # The estimated input and the pieces received before the cut (fewer than asked for).
    assert any(row.strong_cost_micros == strong.cost_micros(Usage(estimate, pieces)) for pieces in range(1, 24))
    assert row.provider_cost_micros == row.strong_cost_micros


def test_selective_race_races_only_prompts_at_risk(racing):
    live, sim_url = racing
    # At a 90% floor a math prompt (cheap 0.65, strong 0.85) is at risk: the cheap answer
    # alone misses the floor, a judged draft would keep it. It is asked first: after a
    # shorter prompt it would save more than the tenant's typical call, and be allowed more.
    routing_settings_update(tenant=live.tenant, speculation="selective", exploration=0.0, quality_floor=0.9)
    risky = ask(live, "Sara has 12 apples and gives 5 to Tom. How many apples does she have left? Answer: 7")
    safe = ask(live, SUPPORT)
    assert safe.headers["x-aka-speculation"] == "cascade:accepted"
    assert risky.headers["x-aka-route"] == "strong" and risky.headers["x-aka-speculation"].startswith("race:")
    rows = live.records(expected=2)
    assert [r.speculation for r in rows] == ["selective", "selective"]


def test_an_open_circuit_is_skipped_and_the_fallback_order_kept(racing):
    live, sim_url = racing
    routing_settings_update(tenant=live.tenant, pool=["gpt-4.1-nano", "gpt-4.1"], exploration=0.0)
    httpx.post(f"{sim_url}/_sim/faults", json={"model": "gpt-4.1-nano", "kind": "500", "times": 3})
    first = ask(live, SUPPORT)   # three failed attempts on nano (AKA_BREAKER_FAILURES=3), then its fallback
    assert (first.headers["x-aka-route"], first.headers["x-aka-model"]) == ("cheap", CHEAP)
    asked_nano = sim_stats(sim_url)["requests"]["gpt-4.1-nano"]

    skipped = ask(live, "My debit card has not arrived yet, where is it?")
    assert skipped.status_code == 200
    assert (skipped.headers["x-aka-route"], skipped.headers["x-aka-model"]) == ("fallback", "gpt-4.1")
    assert sim_stats(sim_url)["requests"]["gpt-4.1-nano"] == asked_nano == 3
    rows = live.records(expected=2)
    assert rows[0].attempts == 4 and rows[1].route_reason.startswith("circuit open: gpt-4.1-nano")
