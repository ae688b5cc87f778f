"""One Redis client per process (and per event loop for the asyncio client)."""

import asyncio
from functools import cache

import redis
import redis.asyncio as aioredis
from django.conf import settings


@cache
def sync_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


_async_clients: dict[int, aioredis.Redis] = {}


def async_client() -> aioredis.Redis:
    # An asyncio connection belongs to the loop that opened it.
    loop_id = id(asyncio.get_running_loop())
    client = _async_clients.get(loop_id)
    if client is None:
        client = _async_clients[loop_id] = aioredis.Redis.from_url(settings.REDIS_URL)
    return client
