"""Throttles for the account pages (sign-up, password reset), counted in Redis so every
replica shares them. Logins are throttled by django-axes (AXES_* settings), which asks
`client_ip` here for the caller's address.

A fixed window per action and client: at most `limit` in `per_seconds`. Redis unreachable:
allowed (logged), as the gateway's rate limits do; these pages stay usable.
"""

import logging

from django.conf import settings
from redis.exceptions import RedisError

from apps.core.redis import sync_client

log = logging.getLogger(__name__)
PREFIX = "aka:throttle:"


def client_ip(request) -> str:
    """The caller's address: REMOTE_ADDR, or behind AKA_TRUSTED_PROXIES proxies the entry
    they appended to AKA_CLIENT_IP_HEADER (the nearest ones are ours; anything further
    left was written by the client and proves nothing)."""
    header = settings.AKA_CLIENT_IP_HEADER
    hops = [h.strip() for h in request.META.get(header, "").split(",") if h.strip()] if header else []
    if hops and settings.AKA_TRUSTED_PROXIES > 0:
        return hops[-min(settings.AKA_TRUSTED_PROXIES, len(hops))]
    return request.META.get("REMOTE_ADDR", "")


def allow(action: str, who: str, *, limit: int, per_seconds: int = 3600) -> bool:
    """Counts one attempt of `action` by `who`; False once more than `limit` were made in
    the current window."""
    key = f"{PREFIX}{action}:{who}"
    try:
        pipe = sync_client().pipeline()
        pipe.set(key, 0, ex=per_seconds, nx=True)  # starts the window
        pipe.incr(key)
        count = pipe.execute()[1]
    except RedisError:
        log.warning("throttle %s not enforced: Redis unavailable", action)
        return True
    return count <= limit
