"""What the cache's storage tests share: random unit vectors and a coroutine run on a
fresh event loop whose database pools are closed after it."""

import asyncio

import numpy as np

from apps.core import pg


def unit(seed: int, dims: int = 384) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=dims).astype(np.float32)
    return vector / np.linalg.norm(vector)


def run(coroutine):
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.run_until_complete(pg.close_pools())
        loop.close()
