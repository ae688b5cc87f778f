"""One Redis client per process (and per event loop for the asyncio client)."""

from functools import cache

import redis
import redis.asyncio as aioredis
from django.conf import settings

from .loops import PerLoop


@cache
def sync_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


async_client = PerLoop(lambda: aioredis.Redis.from_url(settings.REDIS_URL))
