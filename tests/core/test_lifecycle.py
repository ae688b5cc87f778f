"""The ASGI lifespan of a worker process (apps/core/lifecycle.py)."""

import asyncio
import gc

import pytest

from apps.core import lifecycle


@pytest.fixture
def collector():
    """The test process's collector as it was, whatever the lifespan did to it."""
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_a_started_worker_freezes_its_heap_and_collects_young_objects_less_often(monkeypatch, collector):
    monkeypatch.setattr(lifecycle, "_startup", [])
    monkeypatch.setattr(lifecycle, "_shutdown", [])
    gc.unfreeze()
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    seen = []

    async def receive():
        return next(messages)

    async def send(message):
        if message["type"] == "lifespan.startup.complete":
            seen.append((gc.get_freeze_count(), gc.get_threshold()[0]))

    asyncio.run(lifecycle.lifespan(receive, send))
    [(frozen, first_threshold)] = seen
    assert frozen > 10_000   # the test process's modules and objects, at least
    assert first_threshold == lifecycle.GEN0_THRESHOLD == 7000
