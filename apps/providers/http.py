"""The process's one shared aiohttp ClientSession (per event loop), closed at shutdown.

aiohttp directly, not httpx over it: httpx's request building, URL, header and cookie
handling was a tenth of a busy worker's CPU under py-spy (bench/overhead), and importing
httpx (with the command-line extras it pulls in when they are installed) a tenth of a
worker's start-up. Timeouts are per request (`timeout`), per model."""

import aiohttp
from django.conf import settings

from apps.core.lifecycle import on_shutdown
from apps.core.loops import PerLoop

# The longest a call waits for a free connection of the pool, on top of connecting.
POOL_WAIT_SECONDS = 10.0


def _new_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=1000, limit_per_host=0, keepalive_timeout=30),
        cookie_jar=aiohttp.DummyCookieJar(),  # upstream APIs set none we would send back
        timeout=timeout(settings.AKA_UPSTREAM_READ_TIMEOUT),
    )


client = PerLoop(_new_session)


def timeout(read: float) -> aiohttp.ClientTimeout:
    """Connecting within AKA_UPSTREAM_CONNECT_TIMEOUT, and each wait for bytes (the first
    and every gap after it: a stall) within `read` seconds; no bound on the whole call."""
    connect = settings.AKA_UPSTREAM_CONNECT_TIMEOUT
    return aiohttp.ClientTimeout(total=None, connect=connect + POOL_WAIT_SECONDS, sock_connect=connect,
                                 sock_read=read)


@on_shutdown
async def close_clients() -> None:
    for shared in client.drain():
        await shared.close()
