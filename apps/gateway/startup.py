"""Warm what the first call would otherwise pay for, once per worker process."""

import asyncio
from concurrent.futures import Future, ThreadPoolExecutor

from apps.cache.embedder import embedder
from apps.core import pg
from apps.core.lifecycle import on_startup
from apps.providers.catalog import amodels
from apps.providers.http import client

_embedder_ready: Future | None = None


def _load_embedder() -> None:
    embedder().embed(["warm-up"])


def preload() -> None:
    """Starts loading the embedding model (and one embedding through it) on a thread of
    its own, so it overlaps the rest of the app's imports instead of following them:
    ONNX Runtime builds its session mostly outside the GIL, and on two cores this took
    1.3-1.8 s off a worker's time to ready (bench/startup.py). The first call still
    finds the model loaded: `warm` waits for it before the worker answers."""
    global _embedder_ready
    if _embedder_ready is None:
        _embedder_ready = ThreadPoolExecutor(1, thread_name_prefix="embedder-preload").submit(_load_embedder)


@on_startup
async def warm() -> None:
    preload()
    await amodels()
    client()
    # Its first connections open, not just opening: a start-up that ends while one is
    # still connecting left asyncio.run unable to cancel it (a start-up probe hung).
    await (await pg.pool()).wait()
    await asyncio.wrap_future(_embedder_ready)
