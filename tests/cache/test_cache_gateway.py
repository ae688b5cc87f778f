"""The semantic cache through the real gateway and the official OpenAI SDK."""

import hashlib
import time
from datetime import timedelta

import httpx
import openai
import pytest
from rest_framework.test import APIClient

from apps.billing.models import CallRecord
from apps.cache.models import CacheEntry
from apps.cache.services import cache_settings_update
from tests import factories

PIN = "How do I reset my card PIN?"
PIN_PARAPHRASE = "How can I reset my card PIN?"
UNRELATED = "What is the exchange rate for euros today?"


def sdk(live, **headers) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live.url}/v1", api_key=live.raw_key, max_retries=0, default_headers=headers)


def ask(client, content, **kw):
    return client.chat.completions.with_raw_response.create(
        model=kw.pop("model", "gpt-4o-mini"), messages=[{"role": "user", "content": content}], **kw)


def entries(live, expected: int = 1, timeout: float = 3.0) -> list[CacheEntry]:
    """The tenant's cache entries, waiting for `expected` (written after the response)."""
    deadline = time.monotonic() + timeout
    while True:
        found = list(CacheEntry.objects.for_tenant(live.tenant).order_by("id"))
        if len(found) >= expected or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_exact_hit_is_served_without_calling_the_provider(live, simulator):
    client = sdk(live)
    first = ask(client, PIN)
    assert first.headers["x-aka-cache"] == "miss"
    [entry] = entries(live)
    assert (entry.prompt_text, entry.model, entry.scope) == (PIN, "gpt-4o-mini", "")
    assert entry.api_key_id == live.key.pk

    calls_before = httpx.get(f"{simulator}/_sim/stats").json()["requests"].get("gpt-4o-mini", 0)
    second = ask(client, PIN)
    assert second.headers["x-aka-cache"] == "exact"
    assert second.headers["x-aka-cost-usd"] == "0.00000000"
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert httpx.get(f"{simulator}/_sim/stats").json()["requests"].get("gpt-4o-mini", 0) == calls_before

    rows = live.records(expected=2)
    assert [r.cache for r in rows] == ["miss", "exact"]
    hit = rows[1]
    assert (hit.cache_entry_id, hit.provider_cost_micros, hit.prompt_tokens, hit.billable) == (entry.id, 0, 0, True)


def test_semantic_hit_for_a_paraphrase(live):
    client = sdk(live)
    original = ask(client, PIN).parse().choices[0].message.content
    entries(live)
    paraphrase = ask(client, PIN_PARAPHRASE)
    assert paraphrase.headers["x-aka-cache"] == "semantic"
    similarity = float(paraphrase.headers["x-aka-cache-similarity"])
    assert 0.90 <= similarity < 1.0
    assert paraphrase.parse().choices[0].message.content == original
    row = live.records(expected=2)[1]
    assert row.cache == "semantic" and row.cache_similarity == pytest.approx(similarity, abs=1e-4)


def test_unrelated_prompt_misses(live):
    client = sdk(live)
    ask(client, PIN)
    entries(live)
    assert ask(client, UNRELATED).headers["x-aka-cache"] == "miss"


def test_threshold_is_the_tenants(live):
    cache_settings_update(tenant=live.tenant, changes={"threshold": 0.999})
    client = sdk(live)
    ask(client, PIN)
    entries(live)
    assert ask(client, PIN_PARAPHRASE).headers["x-aka-cache"] == "miss"
    assert ask(client, PIN).headers["x-aka-cache"] == "exact"


def test_a_settings_change_reaches_the_gateway_within_the_key_cache_ttl(live):
    client = sdk(live)
    ask(client, PIN)
    entries(live)
    assert ask(client, PIN).headers["x-aka-cache"] == "exact"  # the gateway holds the tenant's settings now
    cache_settings_update(tenant=live.tenant, changes={"enabled": False})
    changed, outcomes = time.monotonic(), []
    while not outcomes or outcomes[-1] != "off":
        assert time.monotonic() - changed < 1.0  # AKA_KEY_CACHE_TTL is 0.5 s in the live gateway
        outcomes.append(ask(client, PIN).headers["x-aka-cache"])
        time.sleep(0.05)
    assert set(outcomes[:-1]) <= {"exact"}
    assert [r.cache for r in live.records(expected=2 + len(outcomes))] == ["miss", "exact", *outcomes]


def test_streaming_hit_streams_the_cached_answer(live):
    client = sdk(live)
    original = ask(client, PIN).parse()
    entries(live)
    with client.chat.completions.with_streaming_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": PIN}], stream=True,
            stream_options={"include_usage": True}) as response:
        assert response.headers["x-aka-cache"] == "exact"
        chunks = list(response.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == original.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1
    assert chunks[-1].usage.completion_tokens == original.usage.completion_tokens


def test_a_hit_names_the_model_that_answered_it_even_after_it_left_the_catalog(live):
    """x-aka-model, the stream's chunks and the ledger row name the cached answer's model,
    streamed or not; a streamed hit named the model asked for when the cached one had left
    the catalog."""
    client = sdk(live)
    ask(client, PIN)
    [entry] = entries(live)
    CacheEntry.objects.for_tenant(live.tenant).filter(pk=entry.pk).update(model="gpt-retired-0613")
    assert ask(client, PIN).headers["x-aka-model"] == "gpt-retired-0613"
    with client.chat.completions.with_streaming_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": PIN}], stream=True) as response:
        assert (response.headers["x-aka-cache"], response.headers["x-aka-model"]) == ("exact", "gpt-retired-0613")
        assert {c.model for c in response.parse()} == {"gpt-retired-0613"}
    hits = CallRecord.objects.for_tenant(live.tenant).filter(cache="exact")
    deadline = time.monotonic() + 3
    while hits.count() < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    # The invoice line too: it was left empty.
    assert sorted(hits.values_list("model_served", "provider")) == [("gpt-retired-0613", "")] * 2


def test_a_streamed_miss_is_cached_too(live):
    client = sdk(live)
    text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": PIN}], stream=True))
    [entry] = entries(live)
    assert entry.response["content"] == text
    assert ask(client, PIN).headers["x-aka-cache"] == "exact"


@pytest.mark.parametrize("headers", [{"Cache-Control": "no-store"}, {"x-aka-cache": "off"}])
def test_no_store_skips_read_and_write(live, headers):
    plain, bypass = sdk(live), sdk(live, **headers)
    ask(plain, PIN)
    entries(live)
    response = ask(bypass, PIN)
    assert response.headers["x-aka-cache"] == "off"
    ask(bypass, "Why was my card declined?")
    ask(plain, UNRELATED)  # a control that is stored, after the bypassed ones
    assert [e.prompt_text for e in entries(live, expected=2)] == [PIN, UNRELATED]
    assert live.records(expected=4)[1].cache == "off"


def test_user_scope_keeps_answers_per_user(live):
    client = sdk(live, **{"x-aka-cache-scope": "user"})
    ask(client, PIN, user="alice")
    [entry] = entries(live)
    assert entry.scope == "user:" + hashlib.sha256(b"alice").hexdigest()[:32]
    assert ask(client, PIN, user="bob").headers["x-aka-cache"] == "miss"
    assert ask(client, PIN, user="alice").headers["x-aka-cache"] == "exact"
    # Tenant-wide requests do not see user-scoped entries either.
    assert ask(sdk(live), PIN).headers["x-aka-cache"] == "miss"


def test_a_user_id_with_nul_has_its_own_cache_scope(live):
    client = sdk(live, **{"x-aka-cache-scope": "user"})
    assert ask(client, PIN, user="a\x00b").headers["x-aka-cache"] == "miss"
    entries(live)
    assert ask(client, PIN, user="a\x00b").headers["x-aka-cache"] == "exact"
    assert ask(client, PIN, user="a\ufffdb").headers["x-aka-cache"] == "miss"


def test_different_system_prompt_never_shares_answers(live):
    client = sdk(live)
    client.chat.completions.create(model="gpt-4o-mini", messages=[
        {"role": "system", "content": "Answer in French."}, {"role": "user", "content": PIN}])
    entries(live)
    assert ask(client, PIN).headers["x-aka-cache"] == "miss"
    assert ask(client, PIN, model="gpt-4o").headers["x-aka-cache"] == "miss"  # another model route


def test_expired_entries_are_not_served(live):
    client = sdk(live)
    ask(client, PIN)
    [entry] = entries(live)
    CacheEntry.objects.for_tenant(live.tenant).filter(id=entry.id).update(expires_at="2000-01-01T00:00:00Z")
    assert ask(client, PIN).headers["x-aka-cache"] == "miss"


def test_a_lowered_ttl_applies_to_entries_already_stored(live):
    client = sdk(live)
    ask(client, PIN)
    [entry] = entries(live)
    CacheEntry.objects.for_tenant(live.tenant).filter(id=entry.id).update(
        created_at=entry.created_at - timedelta(minutes=2))
    assert ask(client, PIN).headers["x-aka-cache"] == "exact"   # within the default TTL, 7 days
    cache_settings_update(tenant=live.tenant, changes={"ttl_seconds": 60})
    time.sleep(0.6)  # the gateway's settings snapshot lives AKA_KEY_CACHE_TTL (0.5 s in tests)
    reader = sdk(live, **{"x-aka-cache": "readonly"})   # neither call writes a fresh entry
    assert [ask(reader, prompt).headers["x-aka-cache"] for prompt in (PIN, PIN_PARAPHRASE)] == ["miss", "miss"]


def only_the_control_is_cached(live) -> None:
    """Sends a cacheable control request after the one under test and waits for its entry:
    by then the earlier call's after-response work is long done, so nothing else may be there."""
    ask(sdk(live), UNRELATED)
    assert [e.prompt_text for e in entries(live)] == [UNRELATED]


def test_errors_are_never_cached(live):
    with pytest.raises(openai.InternalServerError):
        ask(sdk(live), "cards? [[fault:500]]")
    only_the_control_is_cached(live)


def test_truncated_answers_are_never_cached(live):
    ask(sdk(live), PIN, max_tokens=3)
    only_the_control_is_cached(live)


WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def test_tool_calls_are_not_cached_unless_the_tenant_opts_in(live):
    assert ask(sdk(live), "weather in Paris?", tools=[WEATHER]).parse().choices[0].finish_reason == "tool_calls"
    only_the_control_is_cached(live)


def test_tool_calls_cached_when_opted_in(live):
    cache_settings_update(tenant=live.tenant, changes={"tool_calls": True})
    client = sdk(live)
    first = ask(client, "weather in Paris?", tools=[WEATHER]).parse()
    entries(live)
    again = ask(client, "weather in Paris?", tools=[WEATHER])
    assert again.headers["x-aka-cache"] == "exact"
    assert again.parse().choices[0].message.tool_calls[0].function.name == first.choices[0].message.tool_calls[0].function.name


def test_tool_call_entries_are_not_served_once_the_tenant_opts_out(live):
    cache_settings_update(tenant=live.tenant, changes={"tool_calls": True})
    client = sdk(live)
    ask(client, "weather in Paris?", tools=[WEATHER])
    entries(live)
    cache_settings_update(tenant=live.tenant, changes={"tool_calls": False})
    time.sleep(0.6)  # the gateway's settings snapshot lives AKA_KEY_CACHE_TTL (0.5 s in tests)
    assert ask(client, "weather in Paris?", tools=[WEATHER]).headers["x-aka-cache"] == "miss"


def test_cut_streams_are_never_cached(live):
    with pytest.raises(openai.APIError):
        for _ in sdk(live).chat.completions.create(
                model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "fees? [[fault:cut]]"}]):
            pass
    only_the_control_is_cached(live)


def test_high_temperature_is_not_cached(live):
    ask(sdk(live), PIN, temperature=1.5)
    only_the_control_is_cached(live)


def test_a_logprobs_request_neither_reads_nor_writes_the_cache(live):
    """An entry keeps no logprobs: a hit would answer without the ones asked for."""
    client = sdk(live)
    ask(client, PIN)
    entries(live)
    asked = [ask(client, PIN, logprobs=True, top_logprobs=2) for _ in range(2)]
    assert [a.headers["x-aka-cache"] for a in asked] == ["off", "off"]
    assert all(a.parse().choices[0].logprobs is not None for a in asked)
    assert len(entries(live, expected=2, timeout=0.5)) == 1


def test_cache_hits_count(live):
    client = sdk(live)
    ask(client, PIN)
    [entry] = entries(live)
    ask(client, PIN)
    ask(client, PIN_PARAPHRASE)
    deadline = time.monotonic() + 3
    while CacheEntry.objects.for_tenant(live.tenant).get(id=entry.id).hit_count < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    entry = CacheEntry.objects.for_tenant(live.tenant).get(id=entry.id)
    assert entry.hit_count == 2 and entry.last_hit_at is not None
    assert CallRecord.objects.for_tenant(live.tenant).filter(cache_entry_id=entry.id).count() == 2


def test_anthropic_clients_get_hits_in_their_own_format(live):
    import anthropic

    client = anthropic.Anthropic(base_url=live.url, api_key=live.raw_key, max_retries=0)
    first = client.messages.create(model="claude-haiku-4-5", max_tokens=200, messages=[{"role": "user", "content": PIN}])
    entries(live)
    raw = client.messages.with_raw_response.create(model="claude-haiku-4-5", max_tokens=200,
                                                   messages=[{"role": "user", "content": PIN_PARAPHRASE}])
    assert raw.headers["x-aka-cache"] == "semantic"
    again = raw.parse()
    assert again.content[0].text == first.content[0].text and again.stop_reason == "end_turn"


def test_readonly_reads_but_never_writes(live):
    plain, readonly = sdk(live), sdk(live, **{"x-aka-cache": "readonly"})
    ask(plain, PIN)
    entries(live)
    assert ask(readonly, PIN_PARAPHRASE).headers["x-aka-cache"] == "semantic"
    assert ask(readonly, "Why was my card declined?").headers["x-aka-cache"] == "miss"
    ask(plain, UNRELATED)  # a control that is stored, after the readonly ones
    assert [e.prompt_text for e in entries(live, expected=2)] == [PIN, UNRELATED]


@pytest.mark.parametrize("headers", [{"Cache-Control": "no-cache"}, {"x-aka-cache": "refresh"}])
def test_refresh_skips_reading_and_replaces_the_entry(live, simulator, headers):
    ask(sdk(live), PIN)
    [entry] = entries(live)
    response = ask(sdk(live, **headers), PIN)
    assert response.headers["x-aka-cache"] == "miss"
    deadline = time.monotonic() + 3
    while CacheEntry.objects.for_tenant(live.tenant).get(id=entry.id).created_at == entry.created_at:
        assert time.monotonic() < deadline, "the entry was not refreshed"
        time.sleep(0.05)
    assert len(entries(live)) == 1


def test_an_entry_rewritten_by_another_key_is_purged_with_that_key(live):
    ask(sdk(live), PIN)
    [entry] = entries(live)
    other, raw = factories.make_key(live.tenant, "second key")
    ask(openai.OpenAI(base_url=f"{live.url}/v1", api_key=raw, max_retries=0,
                      default_headers={"x-aka-cache": "refresh"}), PIN)
    deadline = time.monotonic() + 3
    while CacheEntry.objects.for_tenant(live.tenant).get(id=entry.id).api_key_id != other.pk:
        assert time.monotonic() < deadline, "the rewritten entry still names the first key"
        time.sleep(0.05)
    owner = APIClient()
    owner.force_login(live.owner)
    assert owner.delete(f"/api/cache/keys/{live.key.pk}/").json() == {"deleted": 0}
    assert owner.delete(f"/api/cache/keys/{other.pk}/").json() == {"deleted": 1}
