"""ORM work from async code (the gateway's snapshots of rarely changed rows, feedback),
off the event loop, one request's worth at a time.

Django gives a request's database connection back at the request's end (the
request_started and request_finished signals close it, or drop it when it broke). The
gateway's lean handler sends neither, so a connection that broke when PostgreSQL
restarted stayed in the ORM's thread and failed every later read: after one restart a
worker answered every call with a 500 until it was restarted itself (bench/faults). Each
call here does what a request does around its work.
"""

from collections.abc import Callable
from typing import TypeVar

from asgiref.sync import sync_to_async
from django.db import connections

T = TypeVar("T")


def _give_back() -> None:
    """Django's close_old_connections, except for a connection inside a transaction: that
    one belongs to its transaction (a test runs every call inside one)."""
    for conn in connections.all(initialized_only=True):
        if not conn.in_atomic_block:
            conn.close_if_unusable_or_obsolete()


def _as_a_request(work: Callable[..., T], *args, **kwargs) -> T:
    _give_back()
    try:
        return work(*args, **kwargs)
    finally:
        _give_back()


async def run(work: Callable[..., T], /, *args, **kwargs) -> T:
    """`work(*args, **kwargs)` on Django's sync thread, its connection given back after."""
    return await sync_to_async(_as_a_request)(work, *args, **kwargs)
