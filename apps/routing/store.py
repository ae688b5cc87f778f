"""The router's memory (routing_sample) as SQL on the gateway's async pool. Every
statement takes the tenant as a required argument and filters on it: a prediction can
only ever read its own tenant's labels, pruned to the one partition holding them."""

from dataclasses import dataclass

import numpy as np

from apps.core import pg

from .predictor import Neighbour

# The labelled nearest neighbours of a prompt among the pool's models. The partial HNSW
# index covers exactly `good IS NOT NULL`; an unlabelled sample costs the search nothing.
# Ordered by the selected distance, so that a sequential scan computes it once per row.
NEAREST = """
SELECT model, good, embedding <=> %(vec)s AS distance FROM routing_sample
WHERE tenant_id = %(tenant)s AND good IS NOT NULL AND model = ANY(%(models)s)
ORDER BY distance LIMIT %(k)s
"""
INSERT = """
INSERT INTO routing_sample (tenant_id, request_id, model, task, embedding, good, label_source)
VALUES (%(tenant)s, %(request)s, %(model)s, %(task)s, %(vec)s, %(good)s, %(source)s)
ON CONFLICT (tenant_id, request_id, model) DO NOTHING
"""


@dataclass(frozen=True, slots=True)
class Sample:
    request_id: str
    model: str
    task: str
    good: float | None = None
    source: str = ""


async def nearest(*, tenant_id: int, vector: np.ndarray, models: list[str], k: int) -> list[Neighbour]:
    async with pg.reading() as conn:
        await pg.with_vectors(conn)
        cur = await conn.execute(NEAREST, {"tenant": tenant_id, "vec": vector, "models": models, "k": k},
                                 binary=True)
        rows = await cur.fetchall()
    return [Neighbour(model=m, good=g, similarity=1.0 - d) for m, g, d in rows]


async def insert(*, tenant_id: int, vector: np.ndarray, samples: list[Sample]) -> None:
    async with (await pg.pool()).connection() as conn:
        await pg.with_vectors(conn)   # before the cursor, which copies the connection's adapters
        async with conn.cursor() as cur:
            await cur.executemany(INSERT, [{"tenant": tenant_id, "request": s.request_id, "model": s.model,
                                            "task": s.task, "vec": vector, "good": s.good, "source": s.source}
                                           for s in samples])
