"""The embedder's batcher (apps/cache/embedder.py): what queued while the model was busy
is the next batch, less the embeddings their callers no longer want."""

import asyncio
import threading

import numpy as np

from apps.cache.embedder import DIMENSIONS, EmbeddingBatcher


class Model:
    """Records each batch; the first one waits until released, so others queue behind it."""

    def __init__(self) -> None:
        self.batches, self.release, self.called = [], threading.Event(), threading.Event()

    def embed(self, texts):
        self.batches.append(list(texts))
        self.called.set()
        self.release.wait(5)
        return np.zeros((len(texts), DIMENSIONS), np.float32)


def test_an_embedding_cancelled_while_queued_is_left_out_of_the_next_batch():
    async def run():
        model = Model()
        batcher = EmbeddingBatcher(model)
        first = asyncio.ensure_future(batcher.embed("busy"))
        await asyncio.sleep(0.05)                      # the model has the first batch
        dropped = asyncio.ensure_future(batcher.embed("exact hit found"))
        kept = asyncio.ensure_future(batcher.embed("a miss"))
        await asyncio.sleep(0)
        dropped.cancel()
        model.release.set()
        await asyncio.gather(first, kept)
        return model.batches

    assert asyncio.run(run()) == [["busy"], ["a miss"]]


def test_an_idle_model_starts_on_a_text_before_the_caller_first_awaits():
    """The lookup asks for the embedding, then does its own work up to the exact
    lookup's first await; the model runs on its thread meanwhile."""
    async def run():
        model = Model()
        model.release.set()
        pending = EmbeddingBatcher(model).embed("a miss")
        started = model.called.wait(2)   # blocks the loop: no task of it can run meanwhile
        return started, (await pending).shape

    assert asyncio.run(run()) == (True, (DIMENSIONS,))


def test_a_batch_whose_run_was_cancelled_does_not_leave_the_batcher_busy():
    """Its texts are cancelled and the next text is embedded, not left waiting for ever
    (the old code let the CancelledError out of the callback, the batcher stayed busy)."""
    async def run():
        model = Model()                      # holds its first run until released
        batcher = EmbeddingBatcher(model)
        lost = batcher.embed("lost")
        cancelled_run = asyncio.get_running_loop().create_future()
        cancelled_run.cancel()
        batcher._finish([("lost", lost)], cancelled_run)   # as the executor's callback would
        following = batcher.embed("next")
        model.release.set()
        return lost.cancelled(), (await asyncio.wait_for(following, 5)).shape

    assert asyncio.run(run()) == (True, (DIMENSIONS,))
