"""API-key authentication for the gateway and the management API.

`Authorization: Bearer aka_...` (OpenAI clients) or `x-api-key: aka_...` (Anthropic
clients) resolves to a `Principal`. Resolved keys are cached per process for
AKA_KEY_CACHE_TTL seconds, so the hot path touches the database about once per key per
TTL and a revocation or suspension takes effect everywhere within that time.
"""

import time
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

from apps.core import metrics
from apps.core.errors import ApiError
from apps.core.snapshots import Snapshots

from . import keys
from .models import ApiKey, Tenant

# last_used_at is written at most this often per key and process.
LAST_USED_EVERY_SECONDS = 60


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: key, tenant, plan and limits. Each app keeps its own per-tenant
    settings (the cache's: apps.cache.services.snapshot)."""

    api_key_id: str
    tenant_id: int
    tenant_slug: str
    tenant_status: str
    price_per_call_cents: int
    tenant_rpm: int
    key_rpm: int
    log_prompts: bool = False
    scope: str = ApiKey.Scope.INFERENCE


_last_used_written: dict[str, float] = {}


def extract_key(headers) -> str | None:
    """The raw key from `Authorization: Bearer` or `x-api-key`, or None."""
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    value = headers.get("x-api-key")
    return value.strip() if value else None


def _load(digest: str) -> Principal | None:
    key = (
        ApiKey.objects.unscoped_across_all_tenants()  # resolving a key is how we learn its tenant
        .select_related("tenant", "tenant__plan")
        .filter(secret_hash=digest, revoked_at__isnull=True)
        .first()
    )
    if key is None:
        return None
    tenant: Tenant = key.tenant
    now = time.monotonic()
    key_id = str(key.pk)
    if now - _last_used_written.get(key_id, -LAST_USED_EVERY_SECONDS) >= LAST_USED_EVERY_SECONDS:
        _last_used_written[key_id] = now
        ApiKey.objects.for_tenant(tenant).filter(pk=key.pk).update(last_used_at=timezone.now())
    return Principal(
        api_key_id=key_id,
        tenant_id=tenant.pk,
        tenant_slug=tenant.slug,
        tenant_status=tenant.status,
        price_per_call_cents=tenant.plan.price_per_call_cents,
        tenant_rpm=tenant.effective_rpm,
        key_rpm=tenant.effective_key_rpm,
        log_prompts=tenant.log_prompts,
        scope=key.scope,
    )


# Unknown keys are kept too (as None), so a flood of made-up keys costs one query each per TTL.
_principals = Snapshots(_load, lambda: settings.AKA_KEY_CACHE_TTL)


def invalid_key(raw: str) -> ApiError:
    """The refusal of a key that names no live key: unknown, revoked, or its tenant deleted."""
    metrics.AUTH_FAILURES.labels("invalid").inc()
    return ApiError(401, f"Incorrect API key provided: {raw[:8]}****.", code="invalid_api_key")


def _check(raw: str | None, principal: Principal | None) -> Principal:
    if raw is None:
        metrics.AUTH_FAILURES.labels("missing").inc()
        raise ApiError(401, "You didn't provide an API key. Send it as 'Authorization: Bearer <key>' or 'x-api-key: <key>'.",
                       code="missing_api_key")
    if principal is None:
        raise invalid_key(raw)
    if principal.tenant_status != Tenant.Status.ACTIVE:
        metrics.AUTH_FAILURES.labels("suspended").inc()
        raise ApiError(403, "This account is suspended. Contact support to restore access.",
                       code="account_suspended")
    return principal


def resolve_key(raw: str | None) -> Principal:
    """The principal for a raw key, or ApiError 401/403."""
    if raw is None:
        return _check(None, None)
    return _check(raw, _principals.get(keys.secret_hash(raw)))


async def aresolve_key(raw: str | None) -> Principal:
    """As resolve_key; only a stale snapshot leaves the event loop for the database."""
    if raw is None:
        return _check(None, None)
    return _check(raw, await _principals.aget(keys.secret_hash(raw)))


def forget_cached_keys() -> None:
    """Empties this process's key cache (tests, and after bulk changes by ops)."""
    _principals.clear()
