"""What billing says about a call before it is served: is the tenant suspended for an
unpaid invoice (402), is it over its monthly call cap (429)?

Both read a per-process snapshot of the tenant's standing (refreshed every
AKA_KEY_CACHE_TTL seconds), so the hot path adds no database query per call. The cap is
counted in Redis, atomically: one Lua script increments the month's counter and takes
the increment back when it passes the cap, so concurrent calls on any number of
processes never overshoot it. Redis unreachable: calls are let through (fail open, as
the rate limits in apps.tenants.ratelimit do, whose check before this one counts the
call in aka_degraded_total).
"""

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from redis.exceptions import RedisError

from apps.core import metrics
from apps.core.errors import ApiError
from apps.core.redis import Script
from apps.core.snapshots import Snapshots
from apps.tenants.models import Tenant

from .models import BillingAccount, PlanBilling

log = logging.getLogger(__name__)

# Counters outlive their month by a few days, then expire.
QUOTA_TTL_SECONDS = 40 * 86400
# ARGV: cap. Returns the count after this call, or -1 (and no count) when over the cap.
_QUOTA_SCRIPT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
if n > tonumber(ARGV[1]) then
  redis.call('DECR', KEYS[1])
  return -1
end
return n
"""


@dataclass(frozen=True, slots=True)
class Standing:
    unpaid_since: float | None = None   # epoch seconds of the first failed payment not yet paid
    monthly_call_cap: int = 0           # 0: no cap


def load_standing(tenant_id: int) -> Standing:
    account = (BillingAccount.objects.for_tenant(tenant_id)
               .values_list("unpaid_since", "monthly_call_cap").first())
    unpaid, cap = account if account else (None, None)
    if cap is None:
        plan = Tenant.objects.filter(pk=tenant_id).values_list("plan__name", flat=True).first()
        cap = PlanBilling.objects.filter(plan_name=plan).values_list("monthly_call_cap", flat=True).first()
    return Standing(unpaid.timestamp() if unpaid else None, cap or 0)


_standings = Snapshots(load_standing, lambda: settings.AKA_KEY_CACHE_TTL)


def forget(tenant_id: int) -> None:
    """This process reads the tenant's standing afresh on its next call."""
    _standings.forget(tenant_id)


def suspended(standing: Standing, now: float) -> bool:
    return standing.unpaid_since is not None and now - standing.unpaid_since > settings.AKA_BILLING_GRACE_SECONDS


async def admit(*, tenant_id: int) -> None:
    """402 for a tenant whose payment failed longer ago than the grace period."""
    if suspended(await _standings.aget(tenant_id), time.time()):
        metrics.BILLING_REFUSED.labels("suspended").inc()
        raise ApiError(402, "This account is suspended because a payment failed. Update the payment method in "
                            "the billing portal; access is restored as soon as the invoice is paid.",
                       code="payment_required")


def quota_key(tenant_id: int, when: datetime | None = None) -> str:
    return f"quota:{tenant_id}:{(when or datetime.now(UTC)):%Y%m}"


_near: dict[int, bool] = {}
_script = Script(_QUOTA_SCRIPT)


async def quota_count(*, tenant_id: int) -> None:
    """Counts one call against the tenant's monthly cap; 429 once it is reached."""
    cap = (await _standings.aget(tenant_id)).monthly_call_cap
    if not cap:
        return
    try:
        count = await _script(keys=[quota_key(tenant_id)], args=[cap, QUOTA_TTL_SECONDS])
    except (RedisError, OSError) as exc:
        # Fail open. The rate limit's check just before this one has already counted the
        # call in aka_degraded_total and warned (at most every few seconds).
        log.debug("Redis unavailable (%s); monthly call cap of tenant %s not enforced", exc, tenant_id)
        return
    _near[tenant_id] = count < 0 or cap - count <= max(2, cap // 10)
    if count < 0:
        metrics.BILLING_REFUSED.labels("quota").inc()
        raise ApiError(429, f"Monthly call quota reached: this account's plan allows {cap} calls per month. "
                            "Upgrade the plan or wait for next month.", code="insufficient_quota")


def near_cap(tenant_id: int) -> bool:
    """Whether the last count this process saw was close to the cap: then the caller
    should wait for the count before spending an upstream call."""
    return _near.get(tenant_id, False)
