"""bench/cache_scale: the semantic cache's lookup latency as the cache table grows.

Builds its own database (`aka_bench_cache`, dropped and recreated at the start, dropped
at the end unless --keep) on the project's PostgreSQL, with the cache table created by
the very SQL of the latest cache migration (64 partitions by HASH (tenant_id,
context_key)), and fills it in
cumulative steps (default 10k, 100k, 1M entries) spread over 1,000 tenants, "a few
large, many small" (Zipf-Mandelbrot: the largest tenant holds ~12%, the median one a few
dozen entries at 1M). Vectors are clustered unit vectors shaped like sentence embeddings
(nearest-neighbour cosine mostly 0.7-0.95, unrelated pairs ~0.1).

Loading: binary COPY into the parent table in committed chunks. Steps that add at most
--rebuild-threshold rows COPY with the HNSW index in place (entries arrive incrementally
in production); bigger steps drop the HNSW index, COPY, and CREATE INDEX again with
maintenance_work_mem raised and max_parallel_maintenance_workers = --build-workers.

After each step, for the largest tenant (its main context and its minor ones apart), a
mid-size one and a small one (a few dozen entries): p50/p99 of the gateway's semantic
lookup (`apps.cache.store.SEMANTIC`, binary results, the session settings of
`apps.core.pg`) and exact lookup (`store.EXACT`) over --queries sequential queries on one
connection, recall@1/@K against brute force, the plan Postgres picks, and the rate of
single-row `store.INSERT`s. Then the embedder's own latency (ONNX and torch).

    python scripts/services.py run -- .venv/bin/python bench/cache_scale.py [--sizes 10000,100000,1000000]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import os
import re
import struct
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "akaplatform.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from pgvector.psycopg import register_vector  # noqa: E402
from psycopg.types.json import Jsonb  # noqa: E402

from apps.cache import selectors, store  # noqa: E402
from apps.core import pg  # noqa: E402

MIGRATION = importlib.import_module("apps.cache.migrations.0002_partition_by_context")
# The table as the later migrations leave it (a demotion column; vectors stored inline).
LATER = [importlib.import_module("apps.cache.migrations.0005_entry_demotion").ADD,
         importlib.import_module("apps.cache.migrations.0006_embedding_inline").INLINE]

BENCH_DB = "aka_bench_cache"
DIM = 384
TENANTS = 1000
CONTEXTS_PER_TENANT = 5
CONTEXT_SHARE = np.array([0.75, 0.10, 0.07, 0.05, 0.03])  # most entries in one context
ZIPF_S, ZIPF_Q = 1.85, 5.75  # weight of rank r ~ (r + q)^-s: top ~12%, median ~40 of 1M
TOPICS, CLUSTERS, GROUPS = 100, 4000, 40
# Embedding space, calibrated on all-MiniLM-L6-v2 over Banking77 train (10k sentences):
# unrelated pairs ~0.20 cosine (p99 0.65), same intent ~0.60 (p10 0.35, p90 0.80), nearest
# neighbour p10/p50/p90 0.79/0.91/0.98, and anisotropic (half the variance in ~15-30
# directions). Levels: shared mean, topic, cluster (an intent), paraphrase group, entry;
# each level's offset drawn with a decaying spectrum (eigenvalue i ~ i^-1.1), its share of
# the squared norm below. Isotropic gaussian clusters instead make every in-cluster pair
# equidistant, which costs HNSW ~15 points of recall@1 that real embeddings don't.
SPECTRUM_ALPHA = 1.1
SHARE = {"mean": 0.20, "topic": 0.15, "cluster": 0.25, "group": 0.28, "entry": 0.12}
EF_SEARCH = int(settings.AKA_CACHE_EF_SEARCH)
K = int(settings.AKA_CACHE_CANDIDATES)  # LIMIT; --k overrides
PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
BANKING77 = Path("/work/shared/data/banking77/test.csv")


COPY_SQL = ("COPY cache_entry (tenant_id, scope, context_key, exact_key, prompt_text, embedding, response, model, "
            "expires_at) FROM STDIN WITH (FORMAT BINARY)")
HNSW_SQL = next(line.strip() for line in MIGRATION.CREATE.splitlines() if "USING hnsw" in line)
HNSW_NAME = HNSW_SQL.split()[2]

FILLER = ("how do I", "why was my", "can you explain the", "what is the fee for", "I need help with my",
          "is it possible to change the", "where can I see the", "please cancel the", "when will I get the",
          "my transfer to", "the app shows an error for", "how long does the")
NOUNS = ("card", "top-up", "transfer", "refund", "exchange rate", "PIN", "account", "statement", "direct debit",
         "cash withdrawal", "virtual card", "payment", "verification", "limit", "fee", "beneficiary")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def pct(values, q) -> float:
    return float(np.percentile(np.asarray(values), q)) if len(values) else float("nan")


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


# --- synthetic data ------------------------------------------------------------------


class Dataset:
    """Every row of the largest size, in random order: any prefix has the same shape."""

    def __init__(self, total: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.rng = np.random.default_rng(seed + 1)
        self.total = total
        ranks = np.arange(1, TENANTS + 1)
        weights = (ranks + ZIPF_Q) ** -ZIPF_S
        self.weights = weights / weights.sum()
        self.rank_tenant = rng.permutation(TENANTS) + 1  # tenant id of rank r (hash partition is random)
        self.tenant_weight = np.empty(TENANTS + 1)
        self.tenant_weight[self.rank_tenant] = self.weights
        self.tenant = self.rank_tenant[rng.choice(TENANTS, size=total, p=self.weights)].astype(np.int64)
        self.context = rng.choice(CONTEXTS_PER_TENANT, size=total, p=CONTEXT_SHARE).astype(np.int8)

        lam = np.arange(1, DIM + 1) ** -SPECTRUM_ALPHA
        self.spectrum = np.sqrt(lam / lam.sum()).astype(np.float32)
        self.basis = np.linalg.qr(rng.standard_normal((DIM, DIM)))[0].astype(np.float32)
        self.mean = (unit(rng.standard_normal(DIM)) * np.sqrt(SHARE["mean"])).astype(np.float32)
        self.spread = rng.uniform(0.6, 1.4, CLUSTERS).astype(np.float32)  # some intents tighter than others
        self.cluster_topic = np.arange(CLUSTERS) % TOPICS
        topic = self.aniso(TOPICS, rng) * np.sqrt(SHARE["topic"])
        cluster = topic[self.cluster_topic] + self.aniso(CLUSTERS, rng) * np.sqrt(SHARE["cluster"] * self.spread)[:, None]
        self.group_vec = (np.repeat(cluster, GROUPS, 0) + self.aniso(CLUSTERS * GROUPS, rng)
                          * np.sqrt(SHARE["group"] * np.repeat(self.spread, GROUPS))[:, None]).astype(np.float32)
        gw = 1.0 / np.arange(1, GROUPS + 1)
        self.group_weight = gw / gw.sum()  # a few popular phrasings per intent, a long tail

        # A tenant talks about a few topics (more for bigger tenants), its clusters Zipf-weighted.
        expected = self.tenant_weight * total
        self.tenant_clusters: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.cluster = np.empty(total, dtype=np.int32)
        order = np.argsort(self.tenant, kind="stable")
        bounds = np.searchsorted(self.tenant[order], np.arange(1, TENANTS + 2))
        for t in range(1, TENANTS + 1):
            n_topics = int(np.clip(1 + expected[t] // 3000, 1, 25))
            chosen = rng.choice(TOPICS, size=n_topics, replace=False)
            pool = rng.permutation(np.flatnonzero(np.isin(self.cluster_topic, chosen)))
            pw = 1.0 / np.arange(1, len(pool) + 1) ** 0.8
            pw /= pw.sum()
            self.tenant_clusters[t] = (pool, pw)
            rows = order[bounds[t - 1]:bounds[t]]
            self.cluster[rows] = rng.choice(pool, size=len(rows), p=pw)

        self.group = rng.choice(GROUPS, size=total, p=self.group_weight).astype(np.int32)
        self.vectors = np.empty((total, DIM), dtype=np.float32)
        for lo in range(0, total, 100_000):
            hi = min(total, lo + 100_000)
            self.vectors[lo:hi] = self.entry_vectors(self.cluster[lo:hi], self.group[lo:hi], rng)
        self.prompt_seed = rng.integers(0, 1 << 30, size=total)
        self.extra_rows = 0  # rows inserted one by one (insert benchmark)

    @staticmethod
    def context_key(tenant: int, ctx: int) -> str:
        return hashlib.blake2b(f"bench:{tenant}:{ctx}".encode(), digest_size=16).hexdigest()

    @staticmethod
    def exact_key(tenant: int, ctx: int, i: int) -> str:
        return hashlib.sha256(f"{Dataset.context_key(tenant, ctx)}\x1f\x1fprompt {i}".encode()).hexdigest()

    def prompt(self, i: int) -> str:
        s = int(self.prompt_seed[i])
        return (f"{FILLER[s % len(FILLER)]} {NOUNS[(s >> 4) % len(NOUNS)]} (case {i}, cluster "
                f"{int(self.cluster[i])}){' please' * ((s >> 8) % 6)}?")

    def aniso(self, n: int, rng=None) -> np.ndarray:
        rng = rng or self.rng
        return (rng.standard_normal((n, DIM), dtype=np.float32) * self.spectrum) @ self.basis.T

    def entry_vectors(self, clusters: np.ndarray, groups: np.ndarray, rng=None) -> np.ndarray:
        noise = self.aniso(len(clusters), rng) * np.sqrt(SHARE["entry"] * self.spread[clusters])[:, None]
        return unit(self.mean + self.group_vec[clusters * GROUPS + groups] + noise).astype(np.float32)

    def fresh_vectors(self, n: int, clusters: np.ndarray | None = None) -> np.ndarray:
        """New prompts: a random cluster (or the given ones), a random phrasing group."""
        c = clusters if clusters is not None else self.rng.integers(0, CLUSTERS, n)
        return self.entry_vectors(c, self.rng.choice(GROUPS, size=n, p=self.group_weight))

    def paraphrase(self, v: np.ndarray) -> np.ndarray:
        """A rewording of an existing prompt: cosine ~0.91-0.98 to it."""
        q = v + self.aniso(1)[0] * np.sqrt(self.rng.uniform(0.05, 0.2))
        return (q / np.linalg.norm(q)).astype(np.float32)

    def copy_chunk(self, lo: int, hi: int) -> bytes:
        """Rows lo..hi in PostgreSQL's binary COPY format (tuples only)."""
        expires = struct.pack(">iq", 8, int((datetime.now(UTC) + timedelta(days=7) - PG_EPOCH)
                                           / timedelta(microseconds=1)))
        head = struct.pack(">h", 9)
        scope = struct.pack(">i", 0)
        vec_head = struct.pack(">ihh", 4 + 4 * DIM, DIM, 0)
        response = struct.pack(">i", 3) + b"\x01{}"
        model = struct.pack(">i", 11) + b"gpt-4o-mini"
        vecs = self.vectors[lo:hi].astype(">f4").tobytes()
        width = 4 * DIM
        ctx_cache: dict[tuple[int, int], bytes] = {}
        parts = []
        for j, i in enumerate(range(lo, hi)):
            t, c = int(self.tenant[i]), int(self.context[i])
            ctx = ctx_cache.get((t, c))
            if ctx is None:
                ctx = ctx_cache[(t, c)] = struct.pack(">i", 32) + self.context_key(t, c).encode()
            prompt = self.prompt(i).encode()
            parts.append(b"".join((
                head, struct.pack(">iq", 8, t), scope, ctx,
                struct.pack(">i", 64), self.exact_key(t, c, i).encode(),
                struct.pack(">i", len(prompt)), prompt,
                vec_head, vecs[j * width:(j + 1) * width],
                response, model, expires)))
        return b"".join(parts)


# --- database --------------------------------------------------------------------------


def admin_conninfo() -> str:
    return os.environ["DATABASE_URL"]


def bench_conninfo() -> str:
    params = conninfo_to_dict(admin_conninfo())
    params["dbname"] = BENCH_DB
    return make_conninfo(**params)


def recreate_database() -> None:
    with psycopg.connect(admin_conninfo(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {BENCH_DB}")
    with psycopg.connect(bench_conninfo(), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION vector")
        conn.execute("CREATE TABLE tenants_tenant (id bigint PRIMARY KEY)")
        conn.execute(f"INSERT INTO tenants_tenant SELECT generate_series(1, {TENANTS})")
        conn.execute(MIGRATION.CREATE)
        for statement in LATER:
            conn.execute(statement)


def drop_database() -> None:
    with psycopg.connect(admin_conninfo(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")


def session(prepare_threshold: int | None = 5) -> psycopg.Connection:
    conn = psycopg.connect(bench_conninfo(), autocommit=True, prepare_threshold=prepare_threshold)
    for stmt in pg.session_settings():  # the gateway pool's own
        conn.execute(stmt)
    register_vector(conn)
    return conn


@dataclass
class Step:
    size: int
    added: int = 0
    mode: str = ""
    copy_s: float = 0.0
    index_s: float = 0.0
    vacuum_s: float = 0.0
    table_mb: float = 0.0
    hnsw_mb: float = 0.0
    results: list = field(default_factory=list)
    insert: dict = field(default_factory=dict)
    plans: dict = field(default_factory=dict)
    stats: dict = field(default_factory=dict)


def load(data: Dataset, start: int, end: int, step: Step, args) -> None:
    step.added = end - start
    rebuild = step.added > args.rebuild_threshold
    step.mode = (f"drop HNSW, COPY, CREATE INDEX (mwm {args.build_mem}, {args.build_workers} parallel worker(s))"
                 if rebuild else "COPY with HNSW in place")
    with psycopg.connect(bench_conninfo(), autocommit=True) as conn:
        if rebuild:
            conn.execute(f"DROP INDEX IF EXISTS {HNSW_NAME}")
        t0 = time.perf_counter()
        for lo in range(start, end, args.copy_chunk):
            hi = min(end, lo + args.copy_chunk)
            payload = data.copy_chunk(lo, hi)
            with conn.transaction(), conn.cursor() as cur, cur.copy(COPY_SQL) as copy:
                copy.write(b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0))
                copy.write(payload)
                copy.write(struct.pack(">h", -1))
            done = hi - start
            if rebuild or done == step.added or (done // args.copy_chunk) % 4 == 0:
                el = time.perf_counter() - t0
                log(f"  copied {done:,}/{step.added:,} rows ({done / el:,.0f} rows/s)")
        step.copy_s = time.perf_counter() - t0
        if rebuild:
            conn.execute(f"SET maintenance_work_mem = '{args.build_mem}'")
            conn.execute(f"SET max_parallel_maintenance_workers = {args.build_workers}")
            log(f"  {HNSW_SQL}")
            t0 = time.perf_counter()
            conn.execute(HNSW_SQL)
            step.index_s = time.perf_counter() - t0
            log(f"  HNSW built in {step.index_s:.0f} s ({end / step.index_s:,.0f} rows/s)")
        t0 = time.perf_counter()
        conn.execute("VACUUM (ANALYZE) cache_entry")
        step.vacuum_s = time.perf_counter() - t0
        step.table_mb = conn.execute("SELECT sum(pg_total_relation_size(inhrelid)) / 1e6 FROM pg_inherits "
                                     "WHERE inhparent = 'cache_entry'::regclass").fetchone()[0]
        step.hnsw_mb = conn.execute(
            "SELECT sum(pg_relation_size(i.inhrelid)) / 1e6 FROM pg_inherits i "
            "WHERE i.inhparent = %s::regclass", (HNSW_NAME,)).fetchone()[0]


# --- lookups ---------------------------------------------------------------------------


@dataclass
class Tenant:
    role: str
    id: int
    entries: int


def pick_tenants(conn) -> list[Tenant]:
    """The largest tenant, a mid-size one and a small one (a few dozen entries)."""
    counts = dict(conn.execute("SELECT tenant_id, count(*) FROM cache_entry GROUP BY 1").fetchall())
    ids = np.array(sorted(counts))
    n = np.array([counts[i] for i in ids])
    large = int(ids[np.argmax(n)])
    small = int(ids[np.argmin(np.abs(n - 40) + (n < 20) * 1000)])
    mid = int(ids[np.argmin(np.abs(np.log(n / np.sqrt(n.max() * 40))))])
    return [Tenant(role, t, counts[t]) for role, t in (("large", large), ("mid", mid), ("small", small))]


def tenant_entries(conn, tenant: int) -> dict[str, tuple[np.ndarray, np.ndarray, list[str]]]:
    """context_key -> (ids, vectors, exact keys), straight from the table, largest context first."""
    groups: dict[str, list] = {}
    with conn.cursor(binary=True) as cur:
        cur.execute("SELECT context_key, id, embedding, exact_key FROM cache_entry WHERE tenant_id = %s AND scope = ''",
                    (tenant,))
        for ctx, i, vec, ek in cur:
            g = groups.setdefault(ctx, [[], [], []])
            g[0].append(i)
            g[1].append(vec.to_numpy())
            g[2].append(ek)
    ordered = sorted(groups.items(), key=lambda kv: -len(kv[1][0]))
    return {ctx: (np.array(g[0]), np.vstack(g[1]).astype(np.float32), g[2]) for ctx, g in ordered}


def partition_of(conn, tenant: int, ctx: str) -> tuple[str, int]:
    part = conn.execute("SELECT tableoid::regclass::text FROM cache_entry WHERE tenant_id = %s AND context_key = %s "
                        "LIMIT 1", (tenant, ctx)).fetchone()[0]
    return part, conn.execute(f"SELECT count(*) FROM {part}").fetchone()[0]


def make_queries(data: Dataset, entries, contexts: list[str], n: int) -> list[tuple[str, np.ndarray]]:
    """Over the given contexts (weighted by size): 80% paraphrases of entries (a true
    neighbour at cosine ~0.91-0.98), 20% fresh prompts from random clusters."""
    rng = data.rng
    sizes = np.array([len(entries[c][0]) for c in contexts])
    pick = rng.choice(len(contexts), size=n, p=sizes / sizes.sum())
    fresh = data.fresh_vectors(n)
    queries = []
    for j, ci in enumerate(pick):
        ids, vecs, _ = entries[contexts[ci]]
        near = rng.random() < 0.8
        queries.append((contexts[ci], data.paraphrase(vecs[rng.integers(len(ids))]) if near else fresh[j]))
    return queries


def semantic_params(tenant: int, ctx: str, vec: np.ndarray) -> dict:
    return {"tenant": tenant, "scope": "", "context": ctx, "vec": vec, "k": K}


def run_semantic(conn, tenant: int, queries, warmup: int = 20):
    """Sequential lookups as store.nearest runs them (binary results), timed from the
    client: execute + fetch of all rows."""
    times, results = [], []
    with conn.cursor(binary=True) as cur:
        for ctx, vec in queries[:warmup]:
            cur.execute(store.SEMANTIC, semantic_params(tenant, ctx, vec)).fetchall()
        for ctx, vec in queries:
            t0 = time.perf_counter()
            rows = cur.execute(store.SEMANTIC, semantic_params(tenant, ctx, vec)).fetchall()
            times.append((time.perf_counter() - t0) * 1000)
            results.append([r[0] for r in rows])
    return times, results


def recall(entries, queries, results) -> tuple[float, float, int]:
    """recall@1, recall@K against brute force over the same context, and how many lookups
    returned fewer than min(K, context size) rows."""
    hit1 = hitk = 0.0
    short = 0
    for (ctx, vec), got in zip(queries, results, strict=True):
        ids, vecs, _ = entries[ctx]
        sims = vecs @ vec
        want = min(K, len(ids))
        top = np.argsort(-sims)[:want]
        short += len(got) < want
        sim_of = dict(zip(ids.tolist(), sims.tolist(), strict=True))
        if got:
            hit1 += sim_of.get(got[0], -2.0) >= sims[top[0]] - 1e-6
        kth = sims[top[-1]] - 1e-6
        hitk += sum(sim_of.get(g, -2.0) >= kth for g in got[:want]) / want
    return hit1 / len(queries), hitk / len(queries), short


def run_exact(conn, data: Dataset, tenant: int, entries, n: int):
    """store.EXACT: 90% keys that exist, 10% misses."""
    rng = data.rng
    keys = [(ctx, ek) for ctx, (_, _, eks) in entries.items() for ek in eks]
    asked = [keys[i] for i in rng.integers(0, len(keys), int(n * 0.9))]
    main = next(iter(entries))
    asked += [(main, hashlib.sha256(f"miss {tenant} {i}".encode()).hexdigest()) for i in range(n - len(asked))]
    asked = [asked[i] for i in rng.permutation(len(asked))]
    times = []
    for j, (ctx, ek) in enumerate(asked):
        t0 = time.perf_counter()
        conn.execute(store.EXACT, {"tenant": tenant, "context": ctx, "exact": ek}).fetchall()
        if j >= 20:  # warm-up
            times.append((time.perf_counter() - t0) * 1000)
    return times


def literal(sql: str, params: dict) -> str:
    """The statement with its parameters inlined (for EXPLAIN)."""
    values = {}
    for k, v in params.items():
        if isinstance(v, np.ndarray):
            values[k] = "'[" + ",".join(f"{x:.7g}" for x in v) + "]'::vector"
        elif isinstance(v, str):
            values[k] = "'" + v.replace("'", "''") + "'"
        else:
            values[k] = str(v)
    return sql % values


def explain(conn, tenant: int, ctx: str, vec: np.ndarray) -> str:
    rows = conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + literal(store.SEMANTIC, semantic_params(tenant, ctx, vec)),
                        prepare=False).fetchall()
    return re.sub(r"'\[[-0-9.e,]+\]'(::vector)?", "'[...384 floats]'", "\n".join(r[0] for r in rows))


def plan_kind(plan: str) -> str:
    """Which index serves the ORDER BY: the partition's HNSW index or a btree + a sort."""
    lines = plan.splitlines()
    if any("embedding_idx" in line for line in lines):
        return "HNSW"
    return "btree+sort" if any("Sort" in line for line in lines) else "?"


def insert_bench(conn, data: Dataset, n: int) -> dict:
    """Single-row store.INSERTs of new entries, tenants drawn like the load's."""
    rng = data.rng
    tenants = data.rank_tenant[rng.choice(TENANTS, size=n, p=data.weights)]
    now = datetime.now(UTC)
    times = []
    inserted = 0
    wal0 = conn.execute("SELECT pg_current_wal_insert_lsn()", prepare=False).fetchone()[0]
    for j, t in enumerate(tenants):
        t = int(t)
        pool, pw = data.tenant_clusters[t]
        vec = data.fresh_vectors(1, rng.choice(pool, size=1, p=pw))[0]
        c = int(rng.choice(CONTEXTS_PER_TENANT, p=CONTEXT_SHARE))
        i = data.total + data.extra_rows + j
        params = {"tenant": t, "scope": "", "context": data.context_key(t, c), "exact": data.exact_key(t, c, i),
                  "api_key": None, "prompt": f"inserted question {i}", "vec": vec, "stat": 0.42,
                  "response": Jsonb({"content": "an answer " * 20, "tool_calls": None, "finish_reason": "stop",
                                     "usage": {"prompt_tokens": 12, "completion_tokens": 40}}),
                  "model": "gpt-4o-mini", "expires": now + timedelta(days=7)}
        t0 = time.perf_counter()
        found = conn.execute(store.INSERT, params).fetchone()
        times.append((time.perf_counter() - t0) * 1000)
        inserted += found is not None
    data.extra_rows += n
    wal = conn.execute("SELECT pg_current_wal_insert_lsn() - %s::pg_lsn", (str(wal0),), prepare=False).fetchone()[0]
    return {"rows": inserted, "rate": n / (sum(times) / 1000), "p50": pct(times, 50), "p99": pct(times, 99),
            "wal_kb": float(wal) / n / 1024}


def stats_time(conn, tenant: int, runs: int = 5) -> float:
    """Median time of the dashboard's entry count/size/hits query (apps.cache.selectors)."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        conn.execute(selectors.STATS, (tenant,)).fetchone()
        times.append((time.perf_counter() - t0) * 1000)
    return pct(times, 50)


def measure(step: Step, data: Dataset, args) -> None:
    """Per tenant and context group (the large tenant's main context and its minor ones
    separately: they differ most), on one long-lived connection with the gateway's settings."""
    log(f"  measuring (load average {os.getloadavg()[0]:.1f})")
    with session() as conn:
        for tn in pick_tenants(conn):
            entries = tenant_entries(conn, tn.id)
            contexts = list(entries)
            groups = [("main ctx", contexts[:1]), ("minor ctx", contexts[1:])] if tn.role == "large" else \
                [("all ctx", contexts)]
            exact = run_exact(conn, data, tn.id, entries, args.queries)
            step.stats[tn.role] = stats_time(conn, tn.id)
            for label, ctxs in groups:
                if not ctxs:
                    continue
                queries = make_queries(data, entries, ctxs, args.queries)
                times, results = run_semantic(conn, tn.id, queries)
                r1, rk, short = recall(entries, queries, results)
                plan = explain(conn, tn.id, ctxs[0], queries[0][1])
                part, part_rows = partition_of(conn, tn.id, ctxs[0])
                row = {"tenant": tn, "group": label, "ctx_rows": sum(len(entries[c][0]) for c in ctxs),
                       "largest_ctx": len(entries[ctxs[0]][0]), "partition": part, "partition_rows": part_rows,
                       "sem": times, "r1": r1, "rk": rk, "short": short, "exact": exact, "plan": plan_kind(plan)}
                step.results.append(row)
                if tn.role == "large":
                    step.plans[label] = plan
                log(f"  {tn.role:5} #{tn.id} {label:9} ({row['ctx_rows']:,} of {tn.entries:,} entries; {part} holds "
                    f"{part_rows:,}): semantic p50 {pct(times, 50):.2f} p99 {pct(times, 99):.2f} ms, recall@1 "
                    f"{r1:.3f} @K {rk:.3f}, short {short}, plan {row['plan']}; exact p50 {pct(exact, 50):.2f} "
                    f"p99 {pct(exact, 99):.2f} ms")
    with session() as wconn:
        step.insert = insert_bench(wconn, data, args.inserts)
    log(f"  single-row INSERT: {step.insert['rate']:,.0f} rows/s (p50 {step.insert['p50']:.2f} "
        f"p99 {step.insert['p99']:.2f} ms, {step.insert['wal_kb']:.0f} kB WAL per row)")


# --- embedder ----------------------------------------------------------------------------


def embed_latency(n_onnx: int, n_torch: int) -> list[dict]:
    import csv

    from apps.cache.embedder import OnnxEmbedder, TorchEmbedder

    with BANKING77.open() as f:
        texts = [row["text"] for row in csv.DictReader(f)][:max(n_onnx, n_torch)]
    out = []
    for name, cls, n in (("onnx", OnnxEmbedder, n_onnx), ("torch", TorchEmbedder, n_torch)):
        if n <= 0:
            continue
        t0 = time.perf_counter()
        model = cls()
        load_s = time.perf_counter() - t0
        for t in texts[:5]:
            model.embed([t])
        times = []
        for t in texts[:n]:
            t0 = time.perf_counter()
            model.embed([t])
            times.append((time.perf_counter() - t0) * 1000)
        out.append({"name": name, "n": n, "load_s": load_s, "p50": pct(times, 50), "p99": pct(times, 99),
                    "mean": float(np.mean(times)), "load": os.getloadavg()[0]})
        log(f"embedder {name}: p50 {pct(times, 50):.2f} p99 {pct(times, 99):.2f} ms over {n} Banking77 queries "
            f"(load {load_s:.1f} s)")
    return out


def nn_similarity(data: Dataset, loaded: int) -> np.ndarray:
    sample = data.rng.choice(loaded, size=min(300, loaded), replace=False)
    best = np.full(len(sample), -1.0, dtype=np.float32)
    for lo in range(0, loaded, 200_000):
        sims = data.vectors[sample] @ data.vectors[lo:min(loaded, lo + 200_000)].T
        own = (sample >= lo) & (sample < lo + 200_000)
        sims[np.flatnonzero(own), sample[own] - lo] = -1
        best = np.maximum(best, sims.max(1))
    return np.percentile(best, [10, 50, 90])


# --- report ------------------------------------------------------------------------------


def report(steps: list[Step], embeds: list[dict], args) -> None:
    print("\n" + "=" * 120)
    print(f"cache_scale: {TENANTS} tenants, {MIGRATION.PARTITIONS} partitions by HASH (tenant_id, context_key), HNSW "
          f"from the migration; store.SEMANTIC (LIMIT {K}) and store.EXACT with the gateway pool's session settings "
          f"(ef_search={EF_SEARCH}, relaxed-order iterative scan, custom plans); {args.queries} sequential queries "
          "per row (80% paraphrases of entries, 20% fresh prompts); sizes cumulative; embedding excluded.")
    print(f"{'size':>9} {'tenant':>12} {'entries':>8} {'contexts':>10} {'rows':>7} | {'semantic p50/p99 ms':>19} "
          f"{'r@1':>5} {'r@K':>5} {'short':>5} | {'exact p50/p99 ms':>16} | plan, partition (rows)")
    for st in steps:
        for r in st.results:
            tn = r["tenant"]
            print(f"{st.size:>9,} {tn.role + ' #' + str(tn.id):>12} {tn.entries:>8,} {r['group']:>10} "
                  f"{r['ctx_rows']:>7,} | {pct(r['sem'], 50):>9.2f}/{pct(r['sem'], 99):<9.2f} {r['r1']:>5.3f} "
                  f"{r['rk']:>5.3f} {r['short']:>5} | {pct(r['exact'], 50):>7.2f}/{pct(r['exact'], 99):<8.2f} | "
                  f"{r['plan']}, {r['partition']} ({r['partition_rows']:,})")
    print("\nloading (rows added per step; COPY in committed chunks of "
          f"{args.copy_chunk:,}, then VACUUM ANALYZE):")
    for st in steps:
        build = f", HNSW build {st.index_s:.0f} s ({st.size / st.index_s:,.0f} rows/s)" if st.index_s else ""
        print(f"  {st.size:>9,}: +{st.added:,} by {st.mode}: COPY {st.copy_s:.1f} s "
              f"({st.added / st.copy_s:,.0f} rows/s){build}, vacuum/analyze {st.vacuum_s:.0f} s; "
              f"table+indexes {st.table_mb:,.0f} MB (HNSW {st.hnsw_mb:,.0f} MB)")
    print("single-row store.INSERT (autocommit, synchronous_commit=off, HNSW in place):")
    for st in steps:
        i = st.insert
        print(f"  {st.size:>9,}: {i['rate']:,.0f} rows/s, p50 {i['p50']:.2f} ms, p99 {i['p99']:.2f} ms, "
              f"{i['wal_kb']:.0f} kB WAL/row")
    print("the dashboard's cache stats query (count, hits, size of every entry), median ms:")
    for st in steps:
        print(f"  {st.size:>9,}: " + ", ".join(f"{role} {ms:.1f}" for role, ms in st.stats.items()))
    if embeds:
        print("embedding, embed([text]) per Banking77 test sentence (not included in the lookups above):")
        for e in embeds:
            print(f"  {e['name']:5}: p50 {e['p50']:.2f} ms, p99 {e['p99']:.2f} ms, mean {e['mean']:.2f} ms "
                  f"({e['n']} queries, load average {e['load']:.1f})")
    last = steps[-1]
    worst = max(last.results, key=lambda r: pct(r["sem"], 99))
    print(f"target semantic p99 < 10 ms at {last.size:,}: {'met' if pct(worst['sem'], 99) < 10 else 'MISSED'} "
          f"(worst: {worst['tenant'].role} tenant {worst['group']}, p99 {pct(worst['sem'], 99):.2f} ms)")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (2 cores; anything else running skews the tails)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--inserts", type=int, default=2000)
    parser.add_argument("--copy-chunk", type=int, default=50_000)
    parser.add_argument("--rebuild-threshold", type=int, default=200_000,
                        help="steps adding more rows than this drop and rebuild the HNSW index")
    parser.add_argument("--build-mem", default="4GB")
    parser.add_argument("--build-workers", type=int, default=1)
    parser.add_argument("--embed-queries", type=int, default=200)
    parser.add_argument("--torch-queries", type=int, default=50)
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args()
    args.sizes = sorted(int(s) for s in args.sizes.split(","))

    t_start = time.perf_counter()
    log(f"generating {args.sizes[-1]:,} entries over {TENANTS} tenants")
    data = Dataset(args.sizes[-1], args.seed)
    log(f"  done; nearest-neighbour cosine over the whole set p10/p50/p90 = "
        f"{'/'.join(f'{x:.2f}' for x in nn_similarity(data, args.sizes[-1]))}; largest tenant share "
        f"{data.weights[0]:.1%}")
    recreate_database()
    log(f"database {BENCH_DB} created (cache table from the migration, {HNSW_SQL!r})")
    steps = []
    loaded = 0
    try:
        for size in args.sizes:
            log(f"size {size:,}: loading {size - loaded:,} rows")
            step = Step(size)
            load(data, loaded, size, step, args)
            loaded = size
            log(f"  COPY {step.copy_s:.1f} s, vacuum/analyze {step.vacuum_s:.1f} s")
            measure(step, data, args)
            steps.append(step)
            for label, plan in step.plans.items():
                print(f"--- EXPLAIN {size:,} large tenant, {label}:\n{plan}", flush=True)
        embeds = embed_latency(args.embed_queries, args.torch_queries) if args.embed_queries else []
        report(steps, embeds, args)
        log(f"total {time.perf_counter() - t_start:.0f} s")
    finally:
        if not args.keep:
            drop_database()
            log(f"dropped {BENCH_DB}")


if __name__ == "__main__":
    main()
