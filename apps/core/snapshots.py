"""Per-process snapshots of rows the hot path reads on every call but people change
rarely (a key's tenant, a tenant's settings): a dict lookup while fresh, one query when
stale, so a change reaches every process within `ttl` seconds."""

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from . import orm

log = logging.getLogger(__name__)
K = TypeVar("K")
V = TypeVar("V")
# Bounds memory under a flood of distinct keys (made-up API keys, say): all are dropped.
MAX_ENTRIES = 50_000


class Snapshots(Generic[K, V]):
    def __init__(self, load: Callable[[K], V], ttl: Callable[[], float]):
        self._load, self._ttl = load, ttl
        self._entries: dict[K, tuple[float, V]] = {}
        # One load per stale key at a time: when an entry expired under 32 concurrent calls,
        # each of them queued its own query on the one sync_to_async thread (five snapshots
        # a call), a third of a busy worker's samples under py-spy and its slowest calls.
        self._loading: dict[K, asyncio.Task] = {}

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
        """As get; only a stale entry leaves the event loop for the database, once for
        all the calls that find it stale together."""
        fresh, value = self._fresh(key)
        if fresh:
            return value
        # Shielded: a caller that goes away (a client disconnect) cancels only its own wait.
        return await asyncio.shield(self._load_once(key)[0])

    def peek(self, key: K) -> V | None:
        """What is kept for `key`, fresh or stale, without waiting (None before its first
        load); a stale or missing entry starts its load in the background, one for all the
        calls that find it so, as aget's. For values too large to wait for on a call."""
        found = self._entries.get(key)
        if found is None or found[0] <= time.monotonic():
            task, started = self._load_once(key)
            if started:   # nobody may wait for it: its failure is logged, and a later call retries
                task.add_done_callback(_log_failure)
        return found[1] if found is not None else None

    def _load_once(self, key: K) -> tuple[asyncio.Task, bool]:
        """The key's load in progress, or a new one (then True)."""
        task = self._loading.get(key)
        if task is None or task.get_loop() is not asyncio.get_running_loop():
            task = self._loading[key] = asyncio.ensure_future(self._aload(key))
            return task, True
        return task, False

    async def _aload(self, key: K) -> V:
        try:
            value = await orm.run(self._load, key)
        finally:
            mine = self._loading.get(key) is asyncio.current_task()
            if mine:
                del self._loading[key]
        # Forgotten while loading (a change was just made): the value may predate it.
        return self._keep(key, value) if mine else value

    def forget(self, key: K) -> None:
        self._entries.pop(key, None)
        self._loading.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()
        self._loading.clear()


def _log_failure(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("snapshot load failed: %r", task.exception())
