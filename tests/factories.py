"""Test data in one place. Everything goes through the real services."""

import itertools

from apps.tenants import services
from apps.tenants.models import Membership, Plan

_seq = itertools.count(1)
PASSWORD = "correct-horse-battery-9"


def ensure_plans() -> None:
    # Transactional tests truncate tables, data-migration rows included.
    for name, cents, rpm, key_rpm in (("Starter", 10, 600, 300), ("Growth", 7, 3000, 1500), ("Scale", 5, 12000, 6000)):
        Plan.objects.get_or_create(
            name=name,
            defaults={"price_per_call_cents": cents, "requests_per_minute": rpm, "key_requests_per_minute": key_rpm},
        )


def make_tenant(name: str | None = None, *, owner_email: str | None = None, plan: str = "Starter"):
    ensure_plans()
    n = next(_seq)
    return services.tenant_create(
        name=name or f"Tenant {n}", owner_email=owner_email or f"owner{n}@example.com", owner_password=PASSWORD,
        plan_name=plan,
    )


def add_member(tenant, email: str, role: str = Membership.Role.MEMBER):
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user(username=email, email=email, password=PASSWORD)
    Membership.objects.for_tenant(tenant).create(tenant=tenant, user=user, role=role)
    return user


def make_key(tenant, name: str = "test key", scope: str = "inference"):
    return services.api_key_issue(tenant=tenant, name=name, scope=scope)
