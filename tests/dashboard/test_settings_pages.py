"""Settings through the page: each change written by its owning app and audited (who,
when, old, new); members invited, re-roled and removed; a tenant keeps an owner."""

import io

import pytest
from django.core import mail
from django.core.management import CommandError, call_command

from apps.audit.models import AuditEvent
from apps.cache.models import DEFAULT_THRESHOLD
from apps.cache.selectors import cache_settings_for
from apps.cache.services import cache_settings_update
from apps.dashboard import forms
from apps.dashboard.selectors import baseline_model_of
from apps.providers.catalog import sync_from_seed
from apps.routing.selectors import routing_settings_for
from apps.tenants.models import ApiKey, Membership, Plan
from tests import factories

pytestmark = pytest.mark.django_db

CACHE = {"cache-enabled": "on", "cache-target_wrong_hit_rate": "1", "cache-threshold": "0.95",
         "cache-ttl_seconds": "3600", "cache-user_scope": "on"}


def events(tenant):
    return list(AuditEvent.objects.for_tenant(tenant).order_by("id").values_list(
        "actor_email", "area", "field", "old_value", "new_value", "staff"))


def test_owner_changes_the_cache_and_every_changed_value_is_audited(client, party):
    client.force_login(party.alice)
    assert client.get("/settings/").status_code == 200
    response = client.post("/settings/cache/", CACHE)
    assert response.status_code == 302
    row = cache_settings_for(tenant=party.tenant)
    assert (row.threshold, row.ttl_seconds, row.user_scope, row.enabled) == (0.95, 3600, True, True)
    assert sorted(events(party.tenant)) == [
        ("alice@example.com", "cache", "threshold", DEFAULT_THRESHOLD, 0.95, False),
        ("alice@example.com", "cache", "ttl_seconds", 604800, 3600, False),
        ("alice@example.com", "cache", "user_scope", False, True, False),
    ]
    client.post("/settings/cache/", CACHE)  # the same values again change nothing
    assert len(events(party.tenant)) == 3
    assert "0.95" in client.get("/settings/").content.decode()


def test_the_wrong_hit_target_is_chosen_in_percent_and_emptied_for_the_threshold_alone(client, party, monkeypatch):
    monkeypatch.setattr(forms, "semantic_floor", lambda: 0.0045601)   # shown rounded up: 0.4561% serves nothing
    client.force_login(party.alice)
    page = client.get("/settings/").content.decode()
    assert 'name="cache-target_wrong_hit_rate" value="1"' in page   # the default, 0.01, shown as 1 (%)
    assert "Below 0.457% only exact repeats" in page                # the calibration's floor
    assert client.post("/settings/cache/", {**CACHE, "cache-target_wrong_hit_rate": "0.5"}).status_code == 302
    assert cache_settings_for(tenant=party.tenant).target_wrong_hit_rate == 0.005
    assert 'name="cache-target_wrong_hit_rate" value="0.5"' in client.get("/settings/").content.decode()
    for bad in ("0.05", "11", "one"):   # the model's bounds, 0.001-0.10, read in percent
        response = client.post("/settings/cache/", {**CACHE, "cache-target_wrong_hit_rate": bad})
        assert response.status_code == 400
    assert "greater than or equal to 0.1" in client.post("/settings/cache/", {
        **CACHE, "cache-target_wrong_hit_rate": "0.05"}).content.decode()
    assert client.post("/settings/cache/", {**CACHE, "cache-target_wrong_hit_rate": ""}).status_code == 302
    assert cache_settings_for(tenant=party.tenant).target_wrong_hit_rate is None
    assert [(f, o, n) for _, _, f, o, n, _ in events(party.tenant) if f == "target_wrong_hit_rate"] == [
        ("target_wrong_hit_rate", 0.01, 0.005), ("target_wrong_hit_rate", 0.005, None)]


def test_a_target_set_elsewhere_survives_a_save_of_the_page_and_a_post_without_it(client, party):
    call_command("set_cache_target", party.tenant.slug, "0.7%", stdout=io.StringIO())
    assert cache_settings_for(tenant=party.tenant).target_wrong_hit_rate == 0.007   # not 0.006999999999999999
    for bad in ("nan%", "inf", "NaN", "1e400%", "x%"):   # NaN passes every bound: refused before
        with pytest.raises(CommandError):
            call_command("set_cache_target", party.tenant.slug, bad, stdout=io.StringIO())
    assert cache_settings_for(tenant=party.tenant).target_wrong_hit_rate == 0.007
    client.force_login(party.alice)
    assert 'name="cache-target_wrong_hit_rate" value="0.7"' in client.get("/settings/").content.decode()
    cache_settings_update(tenant=party.tenant, changes={"target_wrong_hit_rate": 0.0012345})   # the API takes any
    shown = '0.12345'
    assert f'name="cache-target_wrong_hit_rate" value="{shown}"' in client.get("/settings/").content.decode()
    assert client.post("/settings/cache/", {**CACHE, "cache-target_wrong_hit_rate": shown}).status_code == 302
    without = {name: value for name, value in CACHE.items() if name != "cache-target_wrong_hit_rate"}
    assert client.post("/settings/cache/", {**without, "cache-ttl_seconds": "7200"}).status_code == 302
    row = cache_settings_for(tenant=party.tenant)
    assert (row.target_wrong_hit_rate, row.ttl_seconds) == (0.0012345, 7200)
    assert "target_wrong_hit_rate" not in {f for _, _, f, *_ in events(party.tenant)}


def test_out_of_range_threshold_is_refused_with_the_models_own_bounds(client, party):
    client.force_login(party.alice)
    response = client.post("/settings/cache/", {**CACHE, "cache-threshold": "0.5"})
    assert response.status_code == 400 and "0.8" in response.content.decode()
    assert cache_settings_for(tenant=party.tenant).threshold == DEFAULT_THRESHOLD
    assert events(party.tenant) == []


def test_baseline_prompt_logging_and_plan(client, party):
    sync_from_seed()
    client.force_login(party.alice)
    assert client.post("/settings/baseline/", {"baseline-baseline_model": "gpt-4o-mini"}).status_code == 302
    assert baseline_model_of(tenant=party.tenant) == "gpt-4o-mini"
    assert client.post("/settings/privacy/", {"privacy-log_prompts": "on"}).status_code == 302
    growth = Plan.objects.get(name="Growth")
    assert client.post("/settings/plan/", {"plan-plan": growth.pk}).status_code == 302
    party.tenant.refresh_from_db()
    assert party.tenant.log_prompts and party.tenant.plan == growth
    assert [(a, f, o, n) for _, a, f, o, n, _ in events(party.tenant)] == [
        ("baseline", "baseline_model", "gpt-4o", "gpt-4o-mini"),
        ("privacy", "log_prompts", False, True),
        ("plan", "plan", "Starter (10c/call)", "Growth (7c/call)"),
    ]


def test_members_are_invited_re_roled_and_removed(client, party):
    client.force_login(party.alice)
    assert client.post("/settings/members/invite/", {"email": "New.Person@Example.com", "role": "admin"}).status_code == 302
    new = Membership.objects.for_tenant(party.tenant).select_related("user").get(user__email="new.person@example.com")
    assert new.role == "admin" and not new.user.has_usable_password()
    assert len(mail.outbox) == 1 and "/accounts/reset/" in mail.outbox[0].body
    assert client.post(f"/settings/members/{new.pk}/role/", {"role": "member"}).status_code == 302
    assert client.post(f"/settings/members/{new.pk}/remove/").status_code == 302
    assert not Membership.objects.for_tenant(party.tenant).filter(pk=new.pk).exists()
    assert [(f, o, n) for _, _, f, o, n, _ in events(party.tenant)] == [
        ("new.person@example.com", None, "admin"), ("new.person@example.com", "admin", "member"),
        ("new.person@example.com", "member", None)]


def test_a_tenant_named_across_lines_can_still_invite(client, party):
    party.tenant.name = "Acme\nCorp"
    party.tenant.save(update_fields=["name"])
    client.force_login(party.alice)
    assert client.post("/settings/members/invite/", {"email": "new@example.com", "role": "member"}).status_code == 302
    assert mail.outbox[0].subject == "You are invited to Acme Corp on AkaRouter"


def test_a_page_left_open_for_another_tenant_changes_nothing(client, party):
    """Tab 1 shows the first tenant's settings; tab 2 switches the session to a second
    tenant. Tab 1's invitation went to the second tenant, with a success message."""
    other, _ = factories.make_tenant("Second")
    Membership.objects.for_tenant(other).create(tenant=other, user=party.alice, role="owner")
    client.force_login(party.alice)
    page = client.get("/settings/")
    assert f'name="acting_for" value="{party.tenant.pk}"'.encode() in page.content
    assert f'"X-Acting-For": "{party.tenant.pk}"'.encode() in page.content
    assert client.post("/accounts/tenant/", {"tenant": other.pk}).status_code == 302
    invite = {"email": "new@example.com", "role": "admin", "acting_for": party.tenant.pk}
    refused = client.post("/settings/members/invite/", invite)
    assert refused.status_code == 409 and b"another tenant" in refused.content
    refused = client.post("/keys/new/", {"name": "k", "scope": "admin"},
                          headers={"X-Acting-For": str(party.tenant.pk), "HX-Request": "true"})
    assert refused.status_code == 409 and refused["HX-Refresh"] == "true"   # htmx swaps no 409: it reloads
    assert not Membership.objects.for_tenant(other).filter(user__email="new@example.com").exists()
    assert not ApiKey.objects.for_tenant(other).exists() and not mail.outbox
    assert client.post("/settings/members/invite/", {**invite, "acting_for": other.pk}).status_code == 302


def test_an_email_longer_than_an_account_name_is_refused_and_a_long_one_audited(client, party):
    client.force_login(party.alice)
    too_long = "a" * 40 + "@" + "b" * 60 + "." + "c" * 45 + ".com"   # 151 characters: a username holds 150
    response = client.post("/settings/members/invite/", {"email": too_long, "role": "member"})
    assert response.status_code == 400 and "at most 150 characters" in response.content.decode()
    longest = "a" * 40 + "@" + "b" * 60 + "." + "c" * 44 + ".com"
    assert client.post("/settings/members/invite/", {"email": longest, "role": "member"}).status_code == 302
    assert [(f, o, n) for _, _, f, o, n, _ in events(party.tenant)] == [(longest, None, "member")]


def test_the_last_owner_can_neither_leave_nor_step_down(client, party):
    client.force_login(party.alice)
    alice = Membership.objects.for_tenant(party.tenant).get(user=party.alice)
    client.post(f"/settings/members/{alice.pk}/role/", {"role": "member"})
    client.post(f"/settings/members/{alice.pk}/remove/")
    assert Membership.objects.for_tenant(party.tenant).get(pk=alice.pk).role == "owner"
    assert "needs an owner" in client.get("/settings/").content.decode()


def test_the_settings_api_is_audited_too(client, party):
    client.force_login(party.alice)
    response = client.patch("/api/settings/", {"cache_threshold": 0.92, "log_prompts": True},
                            content_type="application/json")
    assert response.status_code == 200
    assert sorted((a, f, n) for _, a, f, _, n, _ in events(party.tenant)) == [
        ("cache", "threshold", 0.92), ("tenant", "log_prompts", True)]


def test_a_change_made_with_an_api_key_is_audited_under_the_key(client, party):
    _, raw = factories.make_key(party.tenant, "ops automation", scope="admin")
    response = client.patch("/api/settings/", {"cache_ttl_seconds": 600}, content_type="application/json",
                            HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 200
    event = AuditEvent.objects.for_tenant(party.tenant).get()
    assert event.actor is None and event.actor_email.startswith("api-key:")
    assert (event.field, event.old_value, event.new_value) == ("ttl_seconds", 604800, 600)


ROUTING = {"routing-quality_floor": "0.9", "routing-speculation": "cascade", "routing-buffered_speculation": "on",
           "routing-judge": "logprob", "routing-judge_threshold": "0.6", "routing-pool": "gpt-4o-mini, gpt-4o"}


def test_owner_changes_routing_through_the_router_and_it_is_audited(client, party):
    sync_from_seed()
    client.force_login(party.alice)
    assert 'name="routing-pool" value="gpt-4o-mini, gpt-4o"' in client.get("/settings/").content.decode()
    assert client.post("/settings/routing/", ROUTING).status_code == 302
    row = routing_settings_for(tenant=party.tenant)
    assert (row.quality_floor, row.speculation, row.buffered_speculation, row.judge, row.judge_threshold,
            row.pool) == (0.9, "cascade", True, "logprob", 0.6, ["gpt-4o-mini", "gpt-4o"])
    assert sorted(events(party.tenant)) == [
        ("alice@example.com", "routing", "buffered_speculation", False, True, False),
        ("alice@example.com", "routing", "judge", "heuristic", "logprob", False),
        ("alice@example.com", "routing", "judge_threshold", 0.5, 0.6, False),
        ("alice@example.com", "routing", "quality_floor", 0.95, 0.9, False),
        ("alice@example.com", "routing", "speculation", "off", "cascade", False),
    ]  # the pool is unchanged: no event
    assert client.post("/settings/routing/", {**ROUTING, "routing-pool": "gpt-4o-mini, claude-haiku-4-5, gpt-4o"}
                       ).status_code == 302
    assert events(party.tenant)[-1][2:5] == ("pool", "['gpt-4o-mini', 'gpt-4o']",
                                             "['gpt-4o-mini', 'claude-haiku-4-5', 'gpt-4o']")


@pytest.mark.parametrize(("field", "value", "says"), [
    ("routing-quality_floor", "0.2", "0.5"),                       # the model's own bound
    ("routing-judge_threshold", "abc", "Enter a number"),
    ("routing-speculation", "sometimes", "Select a valid choice"),
    ("routing-pool", "gpt-4o, gpt-4o-mini", "cheapest"),           # the router's own check, in its service
    ("routing-pool", "gpt-4o-mini, no-such-model", "no-such-model"),
])
def test_bad_routing_values_show_a_form_error_and_change_nothing(client, party, field, value, says):
    sync_from_seed()
    client.force_login(party.alice)
    response = client.post("/settings/routing/", {**ROUTING, field: value})
    assert response.status_code == 400 and says in response.content.decode()
    row = routing_settings_for(tenant=party.tenant)
    assert (row.speculation, row.quality_floor, row.pool) == ("off", 0.95, ["gpt-4o-mini", "gpt-4o"])
    assert events(party.tenant) == []


def test_a_member_cannot_change_routing(client, party):
    sync_from_seed()
    client.force_login(party.bob)
    assert client.post("/settings/routing/", ROUTING).status_code == 403
    assert routing_settings_for(tenant=party.tenant).speculation == "off"
    assert events(party.tenant) == []
