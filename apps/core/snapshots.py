"""Per-process snapshots of rows the hot path reads on every call but people change
rarely (a key's tenant, a tenant's settings): a dict lookup while fresh, one query when
stale, so a change reaches every process within `ttl` seconds."""

import time
from collections.abc import Callable
from typing import Generic, TypeVar

from . import orm

K = TypeVar("K")
V = TypeVar("V")
# Bounds memory under a flood of distinct keys (made-up API keys, say): all are dropped.
MAX_ENTRIES = 50_000


class Snapshots(Generic[K, V]):
    def __init__(self, load: Callable[[K], V], ttl: Callable[[], float]):
        self._load, self._ttl = load, ttl
        self._entries: dict[K, tuple[float, V]] = {}

    def _fresh(self, key: K) -> tuple[bool, V | None]:
        found = self._entries.get(key)
        if found is not None and found[0] > time.monotonic():
            return True, found[1]
        return False, None

    def _keep(self, key: K, value: V) -> V:
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[key] = (time.monotonic() + self._ttl(), value)
        return value

    def get(self, key: K) -> V:
        fresh, value = self._fresh(key)
        return value if fresh else self._keep(key, self._load(key))

    async def aget(self, key: K) -> V:
        """As get; only a stale entry leaves the event loop for the database."""
        fresh, value = self._fresh(key)
        return value if fresh else self._keep(key, await orm.run(self._load, key))

    def forget(self, key: K) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()
