"""A tenant's routing settings through /api/routing/settings/ and routing_settings_update,
with the three-party fixture."""

import pytest
from rest_framework.test import APIClient

from apps.audit.models import AuditEvent
from apps.providers.catalog import sync_from_seed
from apps.routing.selectors import routing_settings_for
from apps.routing.services import InvalidSettings, routing_settings_update

DEFAULTS = {"pool": ["gpt-4o-mini", "gpt-4o"], "aliases": {}, "allow_substitution": False, "quality_floor": 0.95,
            "speculation": "off", "buffered_speculation": False, "judge": "heuristic", "judge_threshold": 0.5,
            "judge_model": "gpt-4o-mini", "exploration": 0.05}


@pytest.fixture(autouse=True)
def catalog(db):
    sync_from_seed()


def as_user(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def stored(tenant) -> dict:
    current = routing_settings_for(tenant=tenant)
    return {name: getattr(current, name) for name in DEFAULTS}


def test_a_new_tenant_has_the_defaults_without_a_row(party):
    assert as_user(party.bob).get("/api/routing/settings/").json() == DEFAULTS
    assert routing_settings_for(tenant=party.tenant)._state.adding


def test_owner_changes_routing_settings_and_the_outsider_sees_none_of_it(party):
    change = {"speculation": "race", "quality_floor": 0.9, "aliases": {"aka:support": ["gpt-4.1-nano", "gpt-4.1"]}}
    response = as_user(party.alice).patch("/api/routing/settings/", change, format="json")
    assert response.status_code == 200
    assert response.json() == {**DEFAULTS, **change}
    assert stored(party.tenant) == {**DEFAULTS, **change}
    assert as_user(party.charlie).get("/api/routing/settings/").json() == DEFAULTS
    assert stored(party.other_tenant) == DEFAULTS


@pytest.mark.parametrize("change, field", [
    ({"pool": ["gpt-4o", "gpt-4o-mini"]}, "pool"),              # strongest first
    ({"pool": ["gpt-4o-mini"]}, "pool"),                        # nothing to route between
    ({"pool": ["gpt-4o-mini", "no-such-model"]}, "pool"),
    ({"pool": ["gpt-4o-mini", "text-embedding-3-small"]}, "pool"),   # not a chat model
    ({"aliases": {"support": ["gpt-4o-mini", "gpt-4o"]}}, "aliases"),
    ({"aliases": {"aka:support": ["gpt-4o"]}}, "aliases"),
    ({"aliases": [["aka:support", ["gpt-4o-mini", "gpt-4o"]]]}, "aliases"),   # not an object (a 500 before)
    ({"aliases": 5}, "aliases"),
    ({"speculation": "always"}, "speculation"),
    ({"judge": "oracle"}, "judge"),
    ({"judge_model": "no-such-model"}, "judge_model"),
    ({"judge_model": "text-embedding-3-small"}, "judge_model"),   # cannot chat, so cannot judge
    ({"exploration": 0.5}, "exploration"),
    ({"quality_floor": 1.2}, "quality_floor"),
])
def test_bad_settings_are_a_400_naming_the_field_and_change_nothing(party, change, field):
    response = as_user(party.alice).patch("/api/routing/settings/", change, format="json")
    assert response.status_code == 400 and list(response.json()) == [field]
    assert stored(party.tenant) == DEFAULTS


def test_member_cannot_change_routing_settings(party):
    assert as_user(party.bob).patch("/api/routing/settings/", {"speculation": "race"}, format="json").status_code == 403
    assert stored(party.tenant) == DEFAULTS


def test_the_service_validates_and_raises_a_value_error(party):
    changed = routing_settings_update(tenant=party.tenant, pool=("gpt-4.1-nano", "gpt-4o-mini", "gpt-4o"),
                                      speculation="selective", judge="llm")
    assert (changed.pool, changed.speculation, changed.judge) == (["gpt-4.1-nano", "gpt-4o-mini", "gpt-4o"],
                                                                  "selective", "llm")
    with pytest.raises(ValueError) as raised:
        routing_settings_update(tenant=party.tenant, judge_threshold=2)
    assert list(raised.value.errors) == ["judge_threshold"]
    with pytest.raises(InvalidSettings):
        routing_settings_update(tenant=party.tenant, colour="blue")
    assert stored(party.tenant)["judge_threshold"] == 0.5


def test_a_change_through_the_api_is_audited_value_by_value(party):
    as_user(party.alice).patch("/api/routing/settings/", {"quality_floor": 0.9, "speculation": "off"}, format="json")
    events = AuditEvent.objects.for_tenant(party.tenant).filter(area="routing")
    assert [(e.actor, e.field, e.old_value, e.new_value) for e in events] == [
        (party.alice, "quality_floor", 0.95, 0.9)]  # speculation was already off
