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
from django.db import close_old_connections

T = TypeVar("T")


def _as_a_request(work: Callable[..., T], *args, **kwargs) -> T:
    close_old_connections()
    try:
        return work(*args, **kwargs)
    finally:
        close_old_connections()


async def run(work: Callable[..., T], /, *args, **kwargs) -> T:
    """`work(*args, **kwargs)` on Django's sync thread, its connection given back after."""
    return await sync_to_async(_as_a_request)(work, *args, **kwargs)
