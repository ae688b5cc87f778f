"""The dashboard's writes: it composes the owning apps' services and audits each change.

A settings section is a form, how to read its current values, and the owning app's
service that writes them; `SECTIONS` lists them in page order, so a new section (say,
routing) is one `Section(...)` entry and nothing else.
"""

from collections.abc import Callable
from dataclasses import dataclass

from django import forms
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction

from apps.audit.services import audit_changes
from apps.billing.accounts import plan_change
from apps.billing.services import billing_settings_update
from apps.cache import services as cache_services
from apps.cache.selectors import cache_settings_for
from apps.routing.selectors import routing_settings_for
from apps.routing.services import routing_settings_update
from apps.tenants import services as tenant_services
from apps.tenants.models import Membership
from apps.tenants.selectors import access_api_key, access_membership

from . import forms as dashboard_forms
from .selectors import baseline_model_of


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    form: type[forms.Form]
    read: Callable[..., dict]      # read(tenant=) -> current values, by form field
    write: Callable[..., object]   # write(tenant=, changes=) through the owning app
    owner_only: bool = False       # else owners and admins


def _cache_read(*, tenant) -> dict:
    row = cache_settings_for(tenant=tenant)
    return {name: getattr(row, name) for name in dashboard_forms.CACHE_FIELDS}


def _routing_read(*, tenant) -> dict:
    row = routing_settings_for(tenant=tenant)
    return {name: getattr(row, name) for name in [*dashboard_forms.ROUTING_FIELDS, "pool"]}


def _tenant_read(*names):
    def read(*, tenant) -> dict:
        return {name: getattr(tenant, name) for name in names}
    return read


SECTIONS = [
    Section("cache", "Semantic cache", dashboard_forms.CacheSettingsForm, _cache_read,
            cache_services.cache_settings_update),
    Section("baseline", "Savings baseline", dashboard_forms.BaselineForm,
            lambda *, tenant: {"baseline_model": baseline_model_of(tenant=tenant)},
            lambda *, tenant, changes: billing_settings_update(tenant=tenant, **changes)),
    Section("routing", "Routing and speculation", dashboard_forms.RoutingForm, _routing_read,
            lambda *, tenant, changes: routing_settings_update(tenant=tenant, **changes)),
    Section("privacy", "Prompt logging", dashboard_forms.PrivacyForm, _tenant_read("log_prompts"),
            tenant_services.tenant_update_settings),
    # Through billing: Stripe's subscription must follow, or it bills the old price and its
    # next update event puts the old plan back.
    Section("plan", "Plan", dashboard_forms.PlanForm, _tenant_read("plan"),
            lambda *, tenant, changes: plan_change(tenant=tenant, plan=changes["plan"]), owner_only=True),
]
SECTION_BY_KEY = {s.key: s for s in SECTIONS}


def may_change(section: Section, membership: Membership) -> bool:
    if section.owner_only:
        return membership.role == Membership.Role.OWNER
    return membership.can_manage


@transaction.atomic
def settings_change(*, tenant, actor, section: Section, values: dict, staff: bool = False) -> dict:
    """Writes the values that differ from the current ones through the owning app, and
    audits each. Returns the changes made; the owning app's refusal (a ValueError naming
    the bad fields in `errors`, as routing's InvalidSettings) changes nothing."""
    before = section.read(tenant=tenant)
    changes = {name: value for name, value in values.items() if before.get(name) != value}
    if changes:
        section.write(tenant=tenant, changes=changes)
        audit_changes(tenant=tenant, actor=actor, area=section.key, before=before, after=changes, staff=staff)
    return changes


@transaction.atomic
def key_create(*, tenant, actor, name: str, scope: str):
    """`actor` is a user, or the API key of a management API call (which creates no user)."""
    creator = actor if isinstance(actor, AbstractBaseUser) else None
    key, raw = tenant_services.api_key_issue(tenant=tenant, name=name, scope=scope, created_by=creator)
    audit_changes(tenant=tenant, actor=actor, area="keys", before={},
                  after={f"{key.prefix} created": f"{key.name} ({key.scope})"})
    return key, raw


@transaction.atomic
def key_rename(*, tenant, actor, key_id, name: str):
    old = access_api_key(tenant=tenant, key_id=key_id).name
    key = tenant_services.api_key_rename(tenant=tenant, key_id=key_id, name=name)
    audit_changes(tenant=tenant, actor=actor, area="keys", before={f"{key.prefix} name": old},
                  after={f"{key.prefix} name": key.name})
    return key


@transaction.atomic
def key_revoke(*, tenant, actor, key_id):
    key = tenant_services.api_key_revoke(tenant=tenant, key_id=key_id)
    audit_changes(tenant=tenant, actor=actor, area="keys", before={f"{key.prefix} revoked": None},
                  after={f"{key.prefix} revoked": key.revoked_at.isoformat()})
    return key


@transaction.atomic
def member_invite(*, tenant, actor, email: str, role: str):
    invitation = tenant_services.member_invite(tenant=tenant, email=email, role=role)
    audit_changes(tenant=tenant, actor=actor, area="members", before={},
                  after={invitation.membership.user.email: invitation.membership.role})
    return invitation


@transaction.atomic
def member_set_role(*, tenant, actor, membership_id, role: str):
    old = access_membership(tenant=tenant, membership_id=membership_id).role
    membership = tenant_services.member_set_role(tenant=tenant, membership_id=membership_id, role=role)
    audit_changes(tenant=tenant, actor=actor, area="members", before={membership.user.email: old},
                  after={membership.user.email: membership.role})
    return membership


@transaction.atomic
def member_remove(*, tenant, actor, membership_id):
    membership = tenant_services.member_remove(tenant=tenant, membership_id=membership_id)
    audit_changes(tenant=tenant, actor=actor, area="members", before={membership.user.email: membership.role},
                  after={membership.user.email: None})
    return membership
