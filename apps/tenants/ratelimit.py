"""Requests-per-minute limits per tenant and per key, enforced atomically in Redis.

GCRA (generic cell rate algorithm) on Redis's clock, shared by every replica: each scope
keeps a theoretical arrival time (TAT). A limit of L per minute admits a burst of L calls
at once, then one call every 60/L seconds; there are no calendar windows to straddle. One
Lua script checks the tenant and the key and moves both TATs only when both admit the
call, so concurrent requests on any number of processes can never overshoot.

Redis unreachable: calls are let through (fail open), counted in aka_degraded_total.
"""

import logging
import time

from redis.exceptions import RedisError, ResponseError

from apps.core import metrics
from apps.core.errors import ApiError
from apps.core.redis import Script

from .keyauth import Principal

log = logging.getLogger(__name__)

# Per-process memory of the last remaining budget seen per tenant and per key, bounded
# like keyauth's cache against a flood of keys.
MAX_TRACKED = 50_000
# A degraded-mode warning is logged at most this often per process.
DEGRADED_LOG_EVERY_SECONDS = 10

# KEYS: tenant TAT, key TAT (microseconds on Redis's clock). ARGV: their limits per
# minute, 0 = unlimited. Emission interval T = ceil(60 s / L) in whole microseconds, so the
# arithmetic is exact; burst tolerance (L - 1) * T lets L calls through at once.
# Returns {allowed, refusing scope (1 tenant, 2 key, 0 none), retry after (s), tenant
# remaining, key remaining}; remaining is what the scope admits right now, -1 if unlimited.
_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local interval, tat, remaining = {}, {}, {}
local refused, wait = 0, 0
for i = 1, 2 do
  local limit = tonumber(ARGV[i])
  remaining[i] = -1
  if limit > 0 then
    interval[i] = math.ceil(60000000 / limit)
    tat[i] = math.max(tonumber(redis.call('GET', KEYS[i]) or '0'), now)
    local slack = (limit - 1) * interval[i] - (tat[i] - now)
    if slack < 0 then
      remaining[i] = 0
      if -slack > wait then refused, wait = i, -slack end
    else
      remaining[i] = math.floor(slack / interval[i]) + 1
    end
  end
end
if refused > 0 then
  return {0, refused, math.max(1, math.ceil(wait / 1000000)), remaining[1], remaining[2]}
end
for i = 1, 2 do
  if interval[i] then
    local next_tat = tat[i] + interval[i]
    -- %.0f: redis.call would print a bare Lua number with 14 digits, losing microseconds.
    -- Expires when the TAT is reached, where a missing key means the same as a stored one.
    redis.call('SET', KEYS[i], string.format('%.0f', next_tat), 'PX', math.ceil((next_tat - now) / 1000))
    remaining[i] = remaining[i] - 1
  end
end
return {1, 0, 0, remaining[1], remaining[2]}
"""

_tenant_remaining: dict[int, int] = {}
_key_remaining: dict[str, int] = {}
_degraded = {"warned_at": float("-inf"), "unwarned": 0}


_script = Script(_SCRIPT)


def _remember(seen: dict, scope_id, remaining: int) -> None:
    seen.pop(scope_id, None)  # re-inserted last, so the least recently seen go first
    if remaining < 0:  # unlimited
        return
    seen[scope_id] = remaining
    if len(seen) > MAX_TRACKED:
        del seen[next(iter(seen))]


def _is_our_script_error(exc: RedisError) -> bool:
    """A bug in the Lua above (or a key of the wrong type): raised, not hidden by failing
    open. Other error replies (READONLY, OOM, BUSY, MISCONF, ...) mean Redis can't serve."""
    if type(exc) is not ResponseError:
        return False
    return (exc.status_code or str(exc).partition(" ")[0]) in ("ERR", "WRONGTYPE")


def _let_through(exc: Exception) -> None:
    metrics.DEGRADED.labels("redis").inc()
    now = time.monotonic()
    if now - _degraded["warned_at"] < DEGRADED_LOG_EVERY_SECONDS:
        _degraded["unwarned"] += 1
        return
    log.warning("Redis unavailable (%s: %s); rate limits not enforced (%d more calls let through since the last warning)",
                type(exc).__name__, exc, _degraded["unwarned"])
    _degraded["warned_at"], _degraded["unwarned"] = now, 0


async def enforce(principal: Principal) -> None:
    """Counts this request against the tenant's and the key's limits; 429 when over.
    Returns without counting when Redis is unavailable."""
    if not principal.tenant_rpm and not principal.key_rpm:
        return  # the script would only answer "unlimited": 8% of a busy worker's py-spy samples
    try:
        allowed, scope, retry_after, tenant_left, key_left = await _script(
            keys=[f"rl:t:{principal.tenant_id}", f"rl:k:{principal.api_key_id}"],
            args=[principal.tenant_rpm, principal.key_rpm],
        )
    except (RedisError, OSError) as exc:  # OSError includes TimeoutError
        if isinstance(exc, RedisError) and _is_our_script_error(exc):
            raise
        _let_through(exc)
        return
    _remember(_tenant_remaining, principal.tenant_id, tenant_left)
    _remember(_key_remaining, principal.api_key_id, key_left)
    if allowed:
        return
    which = "tenant" if scope == 1 else "key"
    metrics.RATE_LIMITED.labels(which).inc()
    limit = principal.tenant_rpm if scope == 1 else principal.key_rpm
    raise ApiError(
        429,
        f"Rate limit reached for this {'account' if which == 'tenant' else 'API key'}: "
        f"{limit} requests per minute. Retry after {retry_after} seconds.",
        code="rate_limit_exceeded",
        headers={"Retry-After": str(retry_after)},
    )


def near_limit(principal: Principal) -> bool:
    """Whether the last budget this process saw for the tenant or the key (a refusal
    leaves 0) was within a small margin of running out: the caller should then wait for
    enforce() before spending an upstream call. False when nothing is known or unlimited."""
    for limit, seen, scope_id in ((principal.tenant_rpm, _tenant_remaining, principal.tenant_id),
                                  (principal.key_rpm, _key_remaining, principal.api_key_id)):
        remaining = seen.get(scope_id)
        if limit > 0 and remaining is not None and remaining <= max(2, limit // 10):
            return True
    return False
