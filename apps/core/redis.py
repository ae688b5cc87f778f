"""One Redis client per process (and per event loop for the asyncio client)."""

from functools import cache

import redis
import redis.asyncio as aioredis
from django.conf import settings
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from .loops import PerLoop

# The async client serves the request path (rate limits), which fails open when Redis is
# unavailable: a hung Redis must cost a call at most this long, once, rather than stall
# it. Local Redis answers in well under a millisecond.
ASYNC_TIMEOUT_SECONDS = 0.25
# Opening a connection gets longer, and a burst shares a few connections rather than
# opening one per call: with 0.25 s and no bound, 50 concurrent first calls on a busy
# machine (the test suite running) timed out connecting and 39 of them went through
# unchecked where 10 were allowed. A Redis that is down refuses at once either way.
CONNECT_TIMEOUT_SECONDS = 1.0
MAX_CONNECTIONS = 16


@cache
def sync_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


# No retries: a retry would multiply the timeout; a broken connection is dropped and the
# next command opens a new one, so the client recovers by itself once Redis is back.
async_client = PerLoop(lambda: aioredis.Redis(connection_pool=aioredis.BlockingConnectionPool.from_url(
    settings.REDIS_URL,
    max_connections=MAX_CONNECTIONS,
    timeout=CONNECT_TIMEOUT_SECONDS,  # waiting for one of the pool's connections
    socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
    socket_timeout=ASYNC_TIMEOUT_SECONDS,
    retry=Retry(NoBackoff(), 0),
)))


class Script:
    """A Lua script registered once per async client (one per event loop), so calls send
    only its hash."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._registered: dict[int, object] = {}

    def __call__(self, *, keys: list, args: list):
        client = async_client()
        script = self._registered.get(id(client))
        if script is None:
            script = self._registered[id(client)] = client.register_script(self.source)
        return script(keys=keys, args=args)
