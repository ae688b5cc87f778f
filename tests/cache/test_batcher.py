"""The embedder's batcher (apps/cache/embedder.py): what queued while the model was busy
is the next batch, less the embeddings their callers no longer want."""

import asyncio
import threading

import numpy as np

from apps.cache.embedder import DIMENSIONS, EmbeddingBatcher


class Model:
    """Records each batch; the first one waits until released, so others queue behind it."""

    def __init__(self) -> None:
        self.batches, self.release = [], threading.Event()

    def embed(self, texts):
        self.batches.append(list(texts))
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
