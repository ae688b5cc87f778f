"""bench/routing_decision: what a routing decision adds beyond the prompt's embedding.

A tenant of its own gets BENCH_LABELLED (default 1000,10000) labelled answers (real
MiniLM embeddings of GSM8K and MMLU prompts from ../shared/data/routellm, the labels their
recorded correctness, two models: two labels per prompt), written with the router's own
store; then, for 300 other prompts, the decision timed without the embedding, which the
cache's lookup already made, two ways alternating call by call:

- pgvector: the labelled-neighbour query on the async pool, then the arithmetic (the
  decision before apps.routing.labels, and still the one while a tenant's copy loads);
- memory: apps.routing.services.decide as the gateway calls it, from this process's copy
  of the tenant's labels.

Prints p50/p95/p99 of each per size with the load average, the copy's load time and
bytes, and how often both ways found the same neighbours (pgvector's HNSW scan is
approximate; the copy's search is exact). The embeddings are kept in the temporary
directory between runs. Run (a migrated database, the project's services):

    .venv/bin/python scripts/services.py run -- .venv/bin/python bench/routing_decision.py
"""

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "akaplatform.settings")

import django  # noqa: E402
from django.conf import settings  # noqa: E402

django.setup()

from apps.cache.embedder import embedder  # noqa: E402
from apps.core import pg  # noqa: E402
from apps.providers.catalog import amodels, sync_from_seed  # noqa: E402
from apps.routing import labels, services, store  # noqa: E402
from apps.routing.classify import task_of  # noqa: E402
from apps.tenants import services as tenants  # noqa: E402

DATA = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT.parent.parent / "shared" / "data" / "routellm")
SIZES = [int(n) for n in os.environ.get("BENCH_LABELLED", "1000,10000").split(",") if n]
QUERIES = 300
CHEAP, STRONG = "gpt-4o-mini", "gpt-4o"


def prompts() -> list[dict]:
    rows = [json.loads(line) for name in ("gsm8k.jsonl", "mmlu.jsonl") for line in (DATA / name).open()]
    rng = np.random.default_rng(0)
    return [rows[i] for i in rng.permutation(len(rows))[: max(SIZES) // 2 + QUERIES]]


def embed_all(texts: list[str]) -> np.ndarray:
    kept = Path(tempfile.gettempdir()) / f"routing_decision_{len(texts)}.npy"
    if kept.exists():
        return np.load(kept)
    model = embedder()
    vectors = np.vstack([model.embed(texts[i:i + 64]) for i in range(0, len(texts), 64)])
    np.save(kept, vectors)
    return vectors


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def neighbours_of(found) -> list[tuple]:
    return sorted((n.model, n.good, round(n.similarity, 4)) for n in found)


async def by_query(tenant_id, config, pool, prompt, vector) -> services.Decision:
    """The decision as it was made before the copy: the pgvector query, then the arithmetic."""
    neighbours = await store.nearest(tenant_id=tenant_id, vector=vector, models=[m.id for m in pool],
                                     k=settings.AKA_ROUTING_NEIGHBOURS)
    return services.decide_with(tenant_id=tenant_id, config=config, pool=pool, task=task_of(prompt),
                                neighbours=neighbours, vector=vector)


async def run(tenant_id: int, rows: list[dict], vectors: np.ndarray) -> None:
    catalog = await amodels()
    pool = [catalog[CHEAP], catalog[STRONG]]
    config = await services.snapshot(tenant_id)
    queries, labelled = range(QUERIES), range(QUERIES, len(rows))
    written = 0
    for size in SIZES:
        # Two labelled answers (cheap and strong model) per prompt, up to `size` in all.
        for i in list(labelled)[written // 2: size // 2]:
            row = rows[i]
            await store.insert(tenant_id=tenant_id, vector=vectors[i], samples=[
                store.Sample(request_id=f"b{i}", model=CHEAP, task=task_of(row["prompt"]),
                             good=float(row["weak_correct"]), source="feedback"),
                store.Sample(request_id=f"b{i}", model=STRONG, task=task_of(row["prompt"]),
                             good=float(row["strong_correct"]), source="feedback")])
        written = size
        async with (await pg.pool()).connection() as conn:
            await conn.execute("ANALYZE routing_sample")
        started = time.perf_counter()
        copy = await labels.load(tenant_id=tenant_id)
        load_ms = (time.perf_counter() - started) * 1000
        ids = sum(sys.getsizeof(r) for r in copy.rows) + sys.getsizeof(copy.rows)
        print(f"{size:>7} labelled answers ({copy.size} prompts): copy loaded in {load_ms:.0f} ms, "
              f"{copy.nbytes / 2**20:.1f} MB of arrays + {ids / 2**20:.1f} MB of request ids", flush=True)
        for i in list(queries)[:20]:   # warm the pool, the index pages and the copy
            await by_query(tenant_id, config, pool, rows[i]["prompt"], vectors[i])
            await services.decide(tenant_id=tenant_id, config=config, pool=pool, prompt=rows[i]["prompt"],
                                  vector=vectors[i])
        timings = {"pgvector": [], "memory": []}
        same = 0
        before = load_average()
        for i in queries:
            for way in ("pgvector", "memory") if i % 2 else ("memory", "pgvector"):
                started = time.perf_counter()
                if way == "pgvector":
                    await by_query(tenant_id, config, pool, rows[i]["prompt"], vectors[i])
                else:
                    await services.decide(tenant_id=tenant_id, config=config, pool=pool, prompt=rows[i]["prompt"],
                                          vector=vectors[i])
                timings[way].append((time.perf_counter() - started) * 1000)
            models, k = [CHEAP, STRONG], settings.AKA_ROUTING_NEIGHBOURS
            same += neighbours_of(await store.nearest(tenant_id=tenant_id, vector=vectors[i], models=models, k=k)) \
                == neighbours_of(copy.nearest(vectors[i], models, k))
        for way, values in timings.items():
            print(f"   {way:>8}: decision p50 {statistics.median(values):.3f} ms, p95 {pct(values, 0.95):.3f} ms, "
                  f"p99 {pct(values, 0.99):.3f} ms")
        print(f"   load average {before} -> {load_average()}; the same {settings.AKA_ROUTING_NEIGHBOURS} "
              f"neighbours both ways for {same} of {QUERIES} prompts")
        async with (await pg.pool()).connection() as conn:
            await pg.with_vectors(conn)
            cur = await conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + store.NEAREST, {
                "tenant": tenant_id, "vec": vectors[0], "models": [CHEAP, STRONG], "k": 16})
            print("   plan: " + "\n   plan: ".join(row[0] for row in await cur.fetchall()
                                                   if "Scan" in row[0] or "Execution" in row[0]))
    await pg.close_pools()


def main() -> None:
    sync_from_seed()
    rows = prompts()
    print(f"embedding {len(rows)} prompts ...", flush=True)
    vectors = embed_all([r["prompt"] for r in rows])
    started = time.perf_counter()
    for r in rows[:100]:
        embedder().embed([r["prompt"]])
    per_prompt = (time.perf_counter() - started) * 10
    print(f"embedding one prompt (for scale; the cache's lookup already pays it): {per_prompt:.2f} ms; "
          f"load average {load_average()}")
    tenant, _ = tenants.tenant_create(name="bench routing decision", owner_email=f"bench-rd-{time.time_ns()}@example.com",
                                      owner_password="bench-password-123", plan_name="Starter")
    try:
        asyncio.run(run(tenant.pk, rows, vectors))
    finally:
        tenant.delete()


if __name__ == "__main__":
    main()
