"""One instance of a thing per event loop: asyncio clients, pools and queues belong to
the loop that made them (tests and benchmarks run more than one loop per process)."""

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerLoop(Generic[T]):
    def __init__(self, factory: Callable[[], T]):
        self.factory = factory
        self.instances: dict[int, T] = {}

    def __call__(self) -> T:
        loop_id = id(asyncio.get_running_loop())
        found = self.instances.get(loop_id)
        if found is None:
            found = self.instances[loop_id] = self.factory()
        return found

    def drain(self) -> list[T]:
        """Every instance, forgetting them (for shut-down hooks)."""
        found, self.instances = list(self.instances.values()), {}
        return found
