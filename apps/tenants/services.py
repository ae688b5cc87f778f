"""Writes to tenants, members and keys. Each is one named action."""

import logging
from typing import NamedTuple

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from . import keys
from .models import ApiKey, Membership, Plan, Tenant
from .selectors import access_api_key, access_membership

DEFAULT_PLAN = "Starter"
log = logging.getLogger(__name__)


def _unique_slug(name: str) -> str:
    base = slugify(name)[:50] or "tenant"
    slug, n = base, 1
    while Tenant.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


def _tenant_insert(*, name: str, plan: Plan, slug: str | None) -> Tenant:
    """Inserts the tenant under `slug`, or under the first free slug of its name. Two
    tenants of one name made at once both find the same slug free: the one that loses the
    insert takes the next (a savepoint keeps the outer transaction usable)."""
    while True:
        candidate = slug or _unique_slug(name)
        try:
            with transaction.atomic():
                return Tenant.objects.create(name=name, slug=candidate, plan=plan)
        except IntegrityError:
            if slug or not Tenant.objects.filter(slug=candidate).exists():
                raise


@transaction.atomic
def tenant_create(*, name: str, owner_email: str, owner_password: str | None, plan_name: str = DEFAULT_PLAN,
                  slug: str | None = None) -> tuple[Tenant, object]:
    """A tenant with its owner (created if the email is new). Returns (tenant, user)."""
    plan = Plan.objects.get(name=plan_name)
    tenant = _tenant_insert(name=name, plan=plan, slug=slug)
    User = get_user_model()
    email = User.objects.normalize_email(owner_email).lower()
    user = User.objects.filter(username=email).first()
    if user is None:
        user = User.objects.create_user(username=email, email=email, password=owner_password)
    Membership.objects.for_tenant(tenant).create(tenant=tenant, user=user, role=Membership.Role.OWNER)
    transaction.on_commit(lambda: _billing_onboard(tenant.pk))
    return tenant, user


def _billing_onboard(tenant_id: int) -> None:
    """Billing makes the new tenant's Stripe customer in the background. Scheduled by task
    name (billing sits above this app); if the broker is down, billing's outbox creates
    the customer later, so sign-up never fails for it."""
    if not (settings.STRIPE_SECRET_KEY or settings.AKA_STRIPE_FAKE):
        return
    from akaplatform.celery import app  # only when a task is sent (akaplatform/celery.py)

    try:
        app.send_task("billing.customer_create", args=[tenant_id])
    except Exception:
        log.exception("could not schedule the Stripe customer of tenant %s; the meter outbox will", tenant_id)


@transaction.atomic
def signup(*, email: str, password_hash: str, organisation: str) -> tuple[Tenant, object, str]:
    """A confirmed sign-up (apps.tenants.signups) creates the tenant, its owner (with the
    password hashed when it was asked for) and a first key. The key is returned once."""
    tenant, user = tenant_create(name=organisation, owner_email=email, owner_password=None)
    user.password = password_hash
    user.save(update_fields=["password"])
    _, raw = api_key_issue(tenant=tenant, name="Default key", created_by=user)
    return tenant, user, raw


def api_key_issue(*, tenant: Tenant, name: str, created_by=None,
                  scope: str = ApiKey.Scope.INFERENCE) -> tuple[ApiKey, str]:
    """Issues a key (for inference unless `scope` says admin); the clear secret is
    returned here and never stored."""
    raw = keys.generate()
    key = ApiKey.objects.for_tenant(tenant).create(
        tenant=tenant,
        name=name.strip() or "Unnamed key",
        prefix=keys.display_prefix(raw),
        secret_hash=keys.secret_hash(raw),
        created_by=created_by,
        scope=ApiKey.Scope(scope),
    )
    return key, raw


def api_key_revoke(*, tenant: Tenant, key_id) -> ApiKey:
    """Revokes a key of this tenant (404 for anyone else's). Every process's key cache
    forgets it within AKA_KEY_CACHE_TTL seconds."""
    key = access_api_key(tenant=tenant, key_id=key_id)
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
    return key


def tenant_set_status(*, tenant: Tenant, status: str) -> Tenant:
    tenant.status = status
    tenant.save(update_fields=["status"])
    return tenant


def tenant_set_rate_limits(*, tenant: Tenant, rpm: int | None, key_rpm: int | None) -> Tenant:
    """Overrides the plan's limits (None: back to the plan's; 0: unlimited)."""
    tenant.rate_limit_rpm, tenant.key_rate_limit_rpm = rpm, key_rpm
    tenant.save(update_fields=["rate_limit_rpm", "key_rate_limit_rpm"])
    return tenant


def tenant_update_settings(*, tenant: Tenant, changes: dict) -> Tenant:
    """Applies validated settings; processes pick them up with the key cache (seconds)."""
    for name, value in changes.items():
        setattr(tenant, name, value)
    tenant.full_clean()
    tenant.save(update_fields=list(changes))
    return tenant


def user_ensure_password(*, email: str, password: str) -> None:
    user = get_user_model().objects.get(username=email)
    if not user.check_password(password):
        user.set_password(password)
        user.save(update_fields=["password"])


# --- Keys and members as the dashboard changes them ---------------------------------------

class LastOwner(ValueError):
    """A tenant keeps at least one owner."""


def api_key_rename(*, tenant: Tenant, key_id, name: str) -> ApiKey:
    key = access_api_key(tenant=tenant, key_id=key_id)
    key.name = name.strip() or key.name
    key.save(update_fields=["name"])
    return key


class Invitation(NamedTuple):
    membership: Membership
    new_account: bool  # made now, without a password until they set one through a reset link
    added: bool  # False when they already belonged to the tenant


@transaction.atomic
def member_invite(*, tenant: Tenant, email: str, role: str = Membership.Role.MEMBER) -> Invitation:
    """Adds the person with this email (a new user if the email has no account) to the tenant."""
    User = get_user_model()
    email = User.objects.normalize_email(email).lower()
    user = User.objects.filter(username=email).first()
    new_account = user is None
    if new_account:
        user = User.objects.create_user(username=email, email=email, password=None)
    membership, added = Membership.objects.for_tenant(tenant).get_or_create(tenant=tenant, user=user,
                                                                            defaults={"role": role})
    return Invitation(membership, new_account, added)


def _lock_members(tenant: Tenant) -> None:
    """Serialises member changes of one tenant until the transaction ends: without it, two
    owners removing or demoting each other at once each count the other and both go."""
    Tenant.objects.select_for_update().only("pk").get(pk=tenant.pk)


def _owners_left(tenant: Tenant, without: Membership) -> int:
    return Membership.objects.for_tenant(tenant).filter(role=Membership.Role.OWNER).exclude(pk=without.pk).count()


@transaction.atomic
def member_set_role(*, tenant: Tenant, membership_id, role: str) -> Membership:
    _lock_members(tenant)
    membership = access_membership(tenant=tenant, membership_id=membership_id)
    if membership.role == Membership.Role.OWNER and role != Membership.Role.OWNER and not _owners_left(tenant, membership):
        raise LastOwner("A tenant needs an owner: make someone else owner first.")
    if role not in Membership.Role.values:
        raise ValueError(f"unknown role {role!r}")
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def member_remove(*, tenant: Tenant, membership_id) -> Membership:
    _lock_members(tenant)
    membership = access_membership(tenant=tenant, membership_id=membership_id)
    if membership.role == Membership.Role.OWNER and not _owners_left(tenant, membership):
        raise LastOwner("A tenant needs an owner: make someone else owner first.")
    membership.delete()
    return membership
