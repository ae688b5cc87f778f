"""Requests-per-minute limits per tenant and per key, enforced atomically in Redis.

One Lua script checks both counters and increments both only when both are under their
limits, so concurrent requests on any number of processes can never overshoot. Windows
are fixed calendar minutes on Redis's clock, shared by every replica.
"""

from apps.core import metrics
from apps.core.errors import ApiError
from apps.core.redis import async_client

from .keyauth import Principal

_SCRIPT = """
local now = redis.call('TIME')
local window = math.floor(tonumber(now[1]) / 60)
local retry_after = 60 - (tonumber(now[1]) % 60)
local tkey = KEYS[1] .. ':' .. window
local kkey = KEYS[2] .. ':' .. window
local tlimit = tonumber(ARGV[1])
local klimit = tonumber(ARGV[2])
local tcount = tonumber(redis.call('GET', tkey) or '0')
local kcount = tonumber(redis.call('GET', kkey) or '0')
if tlimit > 0 and tcount >= tlimit then return {0, 1, retry_after} end
if klimit > 0 and kcount >= klimit then return {0, 2, retry_after} end
redis.call('INCR', tkey)
redis.call('EXPIRE', tkey, 120)
redis.call('INCR', kkey)
redis.call('EXPIRE', kkey, 120)
return {1, 0, 0}
"""

_scripts: dict[int, object] = {}


def _script():
    client = async_client()
    script = _scripts.get(id(client))
    if script is None:
        script = _scripts[id(client)] = client.register_script(_SCRIPT)
    return script


async def enforce(principal: Principal) -> None:
    """Counts this request against the tenant's and the key's minute; 429 when over."""
    allowed, scope, retry_after = await _script()(
        keys=[f"rl:t:{principal.tenant_id}", f"rl:k:{principal.api_key_id}"],
        args=[principal.tenant_rpm, principal.key_rpm],
    )
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
