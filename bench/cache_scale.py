"""bench/cache_scale: a semantic cache hit through the real gateway as the tenant's context
grows to 1, 1,000, 10,000 and 100,000 entries with real-sized answers.

Starts the upstream simulator and one gateway worker (uvicorn, production settings) on
loopback, and gives a tenant of its own (slug `cache-scale`, no rate limit, default cache
settings: first stage at 0.85, verifier at a 1% target) one context per size: the same
chat request with a system prompt naming the size. The first entry of each context is
the gateway's own (a miss it stored); the rest are written by binary COPY, as the
gateway's misses would leave them: Banking77 and HWU64 training queries (20k texts,
their MiniLM embeddings, each entry's neighbourhood radius from its nearest entries in
the context), beyond those the same queries with a greeting around them and their vector
moved by a little noise (cosine ~0.97), and answers of ~1,500 characters (~350 tokens) of
English. A context already filled by an earlier run is kept (`--refill` rebuilds it), so
a migration's carry-over of existing rows is exercised too.

Per size, at concurrency 1 on one keep-alive connection: a cached query with a "?" added
or dropped (embedded and matched: a semantic hit; `x-aka-cache: readonly` keeps it one)
alternating with the stored query itself (an exact hit: the in-run reference, since the
machine is shared and noisy). Only queries that the pre-pass saw answered as semantic
hits are timed. Prints p50/p95 of each, their ratio, the gateway's CPU per call of each
kind (all threads: what latency comes to on a quiet machine, less the database and the
wire), and the lookup's plan as the planner chooses it and forced each way (exact scan,
HNSW; EXPLAIN ANALYZE BUFFERS SERIALIZE under the gateway pool's session settings), also
for a small context that shares the largest one's partition. With `--profile`, py-spy
samples the gateway during semantic hits at the largest size and the bench prints where a
hit's time goes. `semantic_hits(url, sizes)` runs the same against a gateway already
started (bench/overhead may call it).

    scripts/services.py run -- env DATABASE_URL=... .venv/bin/python bench/cache_scale.py \
        [--sizes 1,1000,10000,100000] [--queries 400] [--profile] [--refill] [--baseline CHECKOUT]

`--baseline CHECKOUT` (another checkout of the project, e.g. main's under /tmp, sharing
this one's database) starts that checkout's gateway beside this one's and, after the run
above, times semantic hits alternately through each, per size: a before/after comparison
on which the other load of a shared machine falls alike, with each one's CPU per hit.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "akaplatform.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from pgvector.psycopg import register_vector  # noqa: E402
from psycopg.types.json import Jsonb  # noqa: E402

from apps.cache import store  # noqa: E402
from apps.cache.decision import RADIUS_K  # noqa: E402
from apps.cache.embedder import EXPORT_VERSION, embedder  # noqa: E402
from apps.cache.keys import exact_key  # noqa: E402
from apps.core import pg  # noqa: E402
from apps.providers.catalog import sync_from_seed  # noqa: E402
from apps.tenants import services as tenants  # noqa: E402
from apps.tenants.models import Tenant  # noqa: E402
from tests import live  # noqa: E402
from tests.live import start_gateway, start_simulator  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
DATASETS = (DATA / "banking77" / "train.csv", DATA / "hwu64" / "train.csv")
SLUG = "cache-scale"
MODEL = "gpt-4o-mini"
ANSWER_CHARS = 1500   # about 350 tokens of English
GREETINGS = [("Hi, ", " Thanks."), ("Hello, ", " Thank you."), ("Hey, ", " Thanks!"), ("Hi there, ", " Cheers."),
             ("Good morning, ", " Thanks a lot."), ("Hello again, ", " Many thanks."), ("Hey there, ", " Thank you!"),
             ("Hi team, ", " Thanks in advance."), ("Good evening, ", " Much appreciated.")]
# Production settings: DEBUG's query logging alone costs a worker a large share of its rate.
GATEWAY_ENV = {"DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
               "DJANGO_ALLOWED_HOSTS": "127.0.0.1", "AKA_SSL_REDIRECT": "0", "AKA_LOG_LEVEL": "WARNING"}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def pct(values, q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


# --- The entries --------------------------------------------------------------------------


def corpus() -> tuple[list[tuple[str, str]], np.ndarray]:
    """The training queries of both datasets (text, intent), each text once, in a fixed
    shuffled order, and their embeddings (computed once, then kept in a temp file)."""
    seen, rows = set(), []
    for path in DATASETS:
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                if row["text"] not in seen:
                    seen.add(row["text"])
                    rows.append((row["text"], f"{path.parent.name}:{row['category']}"))
    random.Random(13).shuffle(rows)
    digest = hashlib.sha256(orjson.dumps([EXPORT_VERSION, rows])).hexdigest()[:16]
    saved = Path(tempfile.gettempdir()) / f"aka-cache-scale-{digest}.npy"
    if saved.exists():
        return rows, np.load(saved)
    started = time.perf_counter()
    vectors = np.concatenate([embedder().embed([t for t, _ in rows[i:i + 64]]) for i in range(0, len(rows), 64)])
    np.save(saved, vectors)
    log(f"embedded {len(rows):,} training queries in {time.perf_counter() - started:.0f} s")
    return rows, vectors


def radii(vectors: np.ndarray) -> np.ndarray:
    """Each entry's radius (the decision rule's statistic): its similarity to its RADIUS_K-th
    nearest other entry among `vectors`, by brute force."""
    out = np.empty(len(vectors), dtype=np.float64)
    k = min(RADIUS_K, len(vectors) - 1)
    if k < 1:
        return np.full(len(vectors), np.nan)
    for lo in range(0, len(vectors), 2000):
        sims = vectors[lo:lo + 2000] @ vectors.T
        np.fill_diagonal(sims[:, lo:lo + 2000], -2.0)
        out[lo:lo + 2000] = -np.partition(-sims, k - 1, axis=1)[:, k - 1]
    return out


def entries(rows, vectors, size: int) -> tuple[list[tuple[str, str]], np.ndarray, np.ndarray]:
    """`size` entries: the training queries, then (beyond their number) the same queries
    with a greeting around them and their vector moved by a little noise; copies take
    their original's radius."""
    real = min(size, len(rows))
    out_rows, out_vectors, stats = list(rows[:real]), [vectors[:real]], [radii(vectors[:real])]
    rng = np.random.default_rng(size)
    for round_ in range(-(-size // len(rows)) - 1):
        before, after = GREETINGS[round_ % len(GREETINGS)]
        out_rows += [(f"{before}{text}{after}", intent) for text, intent in rows]
        moved = vectors + rng.normal(size=vectors.shape).astype(np.float32) * (0.25 / np.sqrt(vectors.shape[1]))
        out_vectors.append(moved / np.linalg.norm(moved, axis=1, keepdims=True))
        stats.append(stats[0])
    return out_rows[:size], np.concatenate(out_vectors)[:size], np.concatenate(stats)[:size]


def answer(intent: str, by_intent: dict[str, list[str]], rng: random.Random) -> str:
    """Support-agent-sized English: other customers' questions of the same intent."""
    parts = [f"Thanks for getting in touch about {intent.split(':')[1].replace('_', ' ')}."]
    while sum(map(len, parts)) < ANSWER_CHARS:
        parts.append(rng.choice(by_intent[intent]) + ".")
    return " ".join(parts)


COPY = ("COPY cache_entry (tenant_id, scope, context_key, exact_key, prompt_text, embedding, neighbour_stat, response,"
        " model, expires_at) FROM STDIN (FORMAT BINARY)")
COPY_TYPES = ["bigint", "text", "varchar", "varchar", "text", "vector", "float8", "jsonb", "varchar", "timestamptz"]


def fill(tenant_id: int, context: str, rows, vectors, stats) -> float:
    """Writes the entries by binary COPY in committed chunks of 5,000; seconds taken."""
    by_intent: dict[str, list[str]] = {}
    for text, intent in rows:
        by_intent.setdefault(intent, []).append(text)
    rng = random.Random(len(rows))
    expires = datetime.now(UTC) + timedelta(days=30)
    started = time.perf_counter()
    connection.ensure_connection()
    raw = connection.connection
    register_vector(raw)
    for lo in range(0, len(rows), 5000):
        with raw.transaction(), raw.cursor() as cur, cur.copy(COPY) as copy:
            copy.set_types(COPY_TYPES)
            for i in range(lo, min(len(rows), lo + 5000)):
                text, intent = rows[i]
                content = answer(intent, by_intent, rng)
                copy.write_row((tenant_id, "", context, exact_key(context, "", text), text, vectors[i],
                                None if np.isnan(stats[i]) else float(stats[i]),
                                Jsonb({"content": content, "tool_calls": None, "finish_reason": "stop",
                                       "usage": {"prompt_tokens": 30, "completion_tokens": len(content) // 4}}),
                                MODEL, expires))
    return time.perf_counter() - started


# --- The tenant, its contexts, the gateway -----------------------------------------------------


def bench_tenant() -> tuple[Tenant, str]:
    """The bench's tenant (made on the first run, kept after) and a fresh inference key."""
    sync_from_seed()
    tenant = Tenant.objects.filter(slug=SLUG).first()
    if tenant is None:
        tenant, _ = tenants.tenant_create(name="Cache scale bench", slug=SLUG, owner_email=f"{SLUG}@bench.local",
                                          owner_password=None, plan_name="Scale")
        tenants.tenant_set_rate_limits(tenant=tenant, rpm=0, key_rpm=0)
    return tenant, tenants.api_key_issue(tenant=tenant, name=f"bench {int(time.time())}")[1]


def body(size: int, question: str) -> bytes:
    return orjson.dumps({"model": MODEL, "max_tokens": 400, "messages": [
        {"role": "system", "content": f"You are the support agent of a bank and a home assistant ({size:,} entries)."},
        {"role": "user", "content": question}]})


def context_for(client: httpx.Client, tenant_id: int, size: int, probe: str) -> str:
    """The context key of the size's request: of the entry the gateway stores for `probe`
    (a text kept out of every context's COPY, so it names this context alone), after a
    miss (the write follows the response) or an exact hit on an earlier run's entry."""
    client.post("/v1/chat/completions", content=body(size, probe)).raise_for_status()
    for _ in range(400):
        with connection.cursor() as cur:
            cur.execute("SELECT context_key FROM cache_entry WHERE tenant_id = %s AND prompt_text = %s",
                        [tenant_id, probe])
            found = cur.fetchone()
        if found:
            return found[0]
        time.sleep(0.05)
    raise RuntimeError(f"the gateway did not store the first entry of the {size:,}-entry context")


def count(tenant_id: int, context: str) -> int:
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM cache_entry WHERE tenant_id = %s AND context_key = %s", [tenant_id, context])
        return cur.fetchone()[0]


def empty(tenant_id: int, context: str, keep: str) -> None:
    with connection.cursor() as cur:
        cur.execute("DELETE FROM cache_entry WHERE tenant_id = %s AND context_key = %s AND prompt_text <> %s",
                    [tenant_id, context, keep])


def analyze(tenant_id: int, context: str) -> str:
    """Fresh planner statistics for the context's partition (autovacuum gives them soon
    after such growth); its name."""
    with connection.cursor() as cur:
        cur.execute("SELECT tableoid::regclass::text FROM cache_entry WHERE tenant_id = %s AND context_key = %s LIMIT 1",
                    [tenant_id, context])
        partition = cur.fetchone()[0]
        cur.execute(f"VACUUM ANALYZE {partition}")
    return partition


# --- Measuring ------------------------------------------------------------------------------


def variant(text: str) -> str:
    """The same question in other bytes: not an exact hit, embedded a hair away."""
    return text[:-1] if text.endswith("?") else text + "?"


class Gateway:
    def __init__(self, url: str, key: str) -> None:
        self.pid = gateway_pid(url)
        self.client = httpx.Client(base_url=url, timeout=30, headers={"Authorization": f"Bearer {key}",
                                                                      "Content-Type": "application/json"})

    def ask(self, size: int, question: str, readonly: bool = False) -> tuple[float, str]:
        """(ms, x-aka-cache) of one chat call."""
        started = time.perf_counter()
        response = self.client.post("/v1/chat/completions", content=body(size, question),
                                    headers={"x-aka-cache": "readonly"} if readonly else None)
        took = (time.perf_counter() - started) * 1000
        response.raise_for_status()
        return took, response.headers["x-aka-cache"]


def semantic_queries(gateway: Gateway, size: int, texts: list[str], want: int) -> list[str]:
    """Up to `want` stored texts whose variant the gateway answers as a semantic hit."""
    found = []
    for text in texts:
        if gateway.ask(size, variant(text), readonly=True)[1] == "semantic":
            found.append(text)
            if len(found) == want:
                break
    return found


def timed(gateway: Gateway, size: int, texts: list[str], n: int) -> tuple[list[float], list[float], Counter]:
    """n semantic hits (variants) alternating with n exact hits (the texts themselves)."""
    semantic, exact, answered = [], [], Counter()
    for i in range(n):
        text = texts[i % len(texts)]
        took, kind = gateway.ask(size, variant(text), readonly=True)
        semantic.append(took)
        answered[kind] += 1
        took, kind = gateway.ask(size, text)
        exact.append(took)
        answered[f"exact query: {kind}"] += 1
    return semantic, exact, answered


def cpu_seconds(pid: int) -> float:
    """CPU time of every thread of process `pid` so far (scheduler statistics, ns)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError):
            pass   # a thread that ended meanwhile
    return total / 1e9


def cpu_per_call(gateway: Gateway, pid: int, size: int, texts: list[str], n: int = 100) -> tuple[float, float]:
    """The gateway's CPU ms per semantic hit and per exact hit, all its threads, each kind
    in a run of its own (the record stage after each answer included): what a quiet
    machine's latency is made of, apart from the database's share and the wire."""
    out = []
    for semantic in (True, False):
        time.sleep(0.5)   # the previous run's record stages
        before = cpu_seconds(pid)
        for i in range(n):
            text = texts[i % len(texts)]
            gateway.ask(size, variant(text) if semantic else text, readonly=semantic)
        time.sleep(0.5)
        out.append((cpu_seconds(pid) - before) * 1000 / n)
    return out[0], out[1]


# The lookup as the planner may run it, and each way forced: an exact scan (the distances
# sorted outside a subquery the planner may not flatten, so no index can serve the order),
# and the HNSW index (nothing else yields order without a sort).
FILTER = store.NEAREST[:store.NEAREST.index("ORDER BY")]
WAYS = {"chosen": (store.SEMANTIC, []),
        "exact": (store.SEMANTIC.replace(store.NEAREST, f"SELECT * FROM ({FILTER} OFFSET 0) AS s"
                                         " ORDER BY distance LIMIT %(k)s"), []),
        "HNSW": (store.SEMANTIC, ["SET enable_seqscan = off", "SET enable_bitmapscan = off", "SET enable_sort = off"])}


def plan_summary(tenant_id: int, context: str, vector: np.ndarray, way: str = "chosen") -> str:
    """The semantic lookup's plan under the gateway pool's session settings: nodes, the
    rows the scan read, time and buffers, sending the result rows included (SERIALIZE:
    what detoasting the selected columns costs)."""
    statement, forced = WAYS[way]
    with connection.cursor() as cur:
        for setting in pg.session_settings() + forced:
            cur.execute(setting)
        cur.execute("EXPLAIN (ANALYZE, BUFFERS, SERIALIZE BINARY, FORMAT JSON)" + statement,
                    {"tenant": tenant_id, "scope": "", "context": context, "vec": str(vector.tolist()), "k": 20})
        plan = cur.fetchone()[0][0]
        cur.execute("RESET ALL")
    nodes, node = [], plan["Plan"]
    while node:
        label = node["Node Type"] + (f" {node['Index Name']}" if "Index Name" in node else "")
        if "Scan" in node["Node Type"]:
            label += f" ({node['Actual Rows'] + node.get('Rows Removed by Filter', 0):,.0f} rows)"
        nodes.append(label)
        node = (node.get("Plans") or [None])[0]
    top, sent = plan["Plan"], plan["Serialization"]
    buffers = sum(part.get(f"Shared {kind} Blocks", 0) for part in (top, sent) for kind in ("Hit", "Read"))
    return (f"{' > '.join(nodes)}: {plan['Execution Time']:.2f} ms, {buffers:,} buffers, "
            f"{sent['Output Volume']:,} kB sent")


def plans(tenant_id: int, context: str, vector: np.ndarray) -> list[str]:
    return [f"{way}: {plan_summary(tenant_id, context, vector, way)}" for way in WAYS]


# --- Profiling ------------------------------------------------------------------------------


def gateway_pid(url: str) -> int:
    port = url.rsplit(":", 1)[1]
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"uvicorn" in b" ".join(argv) and port.encode() in argv:
            return int(proc.name)
    raise RuntimeError("no gateway process")


def profiled(pid: int, work):
    """Runs `work()` while py-spy samples process `pid`; (its result, collapsed stacks, seconds)."""
    out = Path(tempfile.mkdtemp()) / "gateway.txt"
    spy = subprocess.Popen([str(ROOT / ".venv" / "bin" / "py-spy"), "record", "--pid", str(pid), "--rate", "500",
                            "--format", "raw", "--output", str(out), "--nonblocking", "--threads"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    started = time.perf_counter()
    try:
        result = work()
    finally:
        seconds = time.perf_counter() - started
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=60)
    return result, out.read_text() if out.exists() else "", seconds


# A sample whose innermost frame is one of these is a thread waiting (uvloop's C loop, or
# a pool thread waiting for work): py-spy cannot tell idle from busy there.
WAITING = ("Runner.run (asyncio/runners.py)", "_worker (concurrent/futures/thread.py)")


def profile_report(stacks: str, seconds: float, requests: int, top: int = 24) -> str:
    """Where a request's time goes, in ms per request: each function of the project (and
    the embedding model's run) with the samples it was on the stack for (inclusive), per
    thread kind, at the rate py-spy actually kept on the event loop's thread."""
    inclusive, threads = Counter(), Counter()
    for line in stacks.splitlines():
        frames, _, n = line.rpartition(" ")
        if not frames or not n.isdigit():
            continue
        names = [re.sub(r":\d+\)$", ")", f) for f in frames.split(";")]
        thread = "event loop" if "Runner.run (asyncio/runners.py)" in names else "other threads"
        threads[thread] += int(n)
        if names[-1] in WAITING:
            threads[f"{thread}, waiting"] += int(n)
            continue
        for name in set(names):
            if re.search(r"\((apps|akaplatform)/", name) or name.startswith("Session.run "):
                inclusive[f"{name} [{thread}]"] += int(n)
    rate = threads["event loop"] / seconds if seconds else 0
    if not rate:
        return "  (py-spy recorded nothing)"
    per = 1000 / rate / requests
    lines = [f"  {requests} requests in {seconds:.1f} s; py-spy kept {rate:.0f} samples/s on the event loop; "
             f"ms per request (inclusive):"]
    lines += [f"    {n * per:7.2f}  {name}" for name, n in inclusive.most_common(top)]
    lines += [f"    {n * per:7.2f}  ({name}: all samples)" for name, n in sorted(threads.items())]
    return "\n".join(lines)


# --- The run --------------------------------------------------------------------------------

PROBES = 97   # texts kept out of the contexts: each size's first entry, the one the gateway stores
SHARED = 1000   # entries of a small context in the largest one's partition


def sharing_context(tenant_id: int, partition: str) -> str:
    """A context key of the tenant that hashes into `partition` (cache_entry_p<remainder>)."""
    remainder = int(partition.rsplit("_p", 1)[1])
    with connection.cursor() as cur:
        for i in range(100_000):
            key = f"shared-partition-{i}"
            cur.execute("SELECT satisfies_hash_partition('cache_entry'::regclass, 64, %s, %s::bigint, %s::varchar)",
                        [remainder, tenant_id, key])
            if cur.fetchone()[0]:
                return key
    raise RuntimeError(f"no context key hashes into {partition}")


def measure(gateway: Gateway, tenant_id: int, size: int, probe: str, rows, vectors, args, profile_pid=None) -> dict:
    context = context_for(gateway.client, tenant_id, size, probe)
    held = count(tenant_id, context)
    if args.refill or held < size:
        empty(tenant_id, context, keep=probe)
        chosen, chosen_vectors, stats = entries(rows, vectors, size - 1)
        seconds = fill(tenant_id, context, chosen, chosen_vectors, stats)
        log(f"{size:,}: wrote {len(chosen):,} entries in {seconds:.1f} s")
        held = count(tenant_id, context)
    partition = analyze(tenant_id, context)
    texts = [probe] + [text for text, _ in rows[:min(size - 1, len(rows))]]
    queries = semantic_queries(gateway, size, texts, args.distinct)
    if not queries:
        raise RuntimeError(f"{size:,}: no query was answered as a semantic hit")
    timed(gateway, size, queries, 20)   # warm: the partition's pages, the pool's connections
    load = os.getloadavg()[0]
    semantic, exact, answered = timed(gateway, size, queries, args.queries)
    cpu = cpu_per_call(gateway, gateway.pid, size, queries)
    profile = None
    if profile_pid:   # semantic hits alone, after the timed ones
        n = min(args.queries, 200)
        _, stacks, seconds = profiled(profile_pid, lambda: [gateway.ask(size, variant(queries[i % len(queries)]),
                                                                        readonly=True) for i in range(n)])
        profile = profile_report(stacks, seconds, n)
    vector = embedder().embed([variant(queries[0])])[0]
    found = {"size": size, "held": held, "context": context, "partition": partition, "semantic": semantic,
             "exact": exact, "answered": answered, "load": load, "cpu": cpu, "plans": plans(tenant_id, context, vector),
             "vector": vector, "profile": profile}
    log(f"{held:,} entries: semantic p50 {pct(semantic, 50):.2f} ms, exact p50 {pct(exact, 50):.2f} ms; "
        f"{found['plans'][0]}")
    return found


def semantic_hits(url: str, sizes: list[int], *, queries: int = 400, distinct: int = 50, profile: bool = False,
                  refill: bool = False) -> tuple[list[dict], list[str]]:
    """Semantic and exact hits through the running gateway at `url` (its database is this
    process's) for each context size: per size a dict of figures; then the plans of a
    small context sharing the largest one's partition. bench/overhead may call it too."""
    args = argparse.Namespace(queries=queries, distinct=distinct, refill=refill)
    rows, vectors = corpus()
    probes, rows, vectors = rows[-PROBES:], rows[:-PROBES], vectors[:-PROBES]
    tenant, key = bench_tenant()
    gateway = Gateway(url, key)
    results = [measure(gateway, tenant.id, size, probes[size % PROBES][0], rows, vectors, args,
                       gateway.pid if profile and size == sizes[-1] else None) for size in sorted(sizes)]
    largest = results[-1]
    shared = sharing_context(tenant.id, largest["partition"])
    if count(tenant.id, shared) < SHARED:
        empty(tenant.id, shared, keep="")
        fill(tenant.id, shared, *entries(rows, vectors, SHARED))
    analyze(tenant.id, shared)
    return results, plans(tenant.id, shared, largest["vector"])


def versus(url: str, baseline_url: str, sizes: list[int], n: int, distinct: int) -> list[dict]:
    """Semantic hits alternately through this checkout's gateway and the baseline's (the
    first of each pair alternating too), per size, on the contexts the run above filled;
    p50s, their ratio and each one's CPU per hit."""
    rows, _ = corpus()
    probes, rows = rows[-PROBES:], rows[:-PROBES]
    _, key = bench_tenant()
    ours, theirs = Gateway(url, key), Gateway(baseline_url, key)
    out = []
    for size in sorted(sizes):
        texts = [probes[size % PROBES][0]] + [text for text, _ in rows[:min(size - 1, len(rows))]]
        queries = semantic_queries(ours, size, texts, distinct)
        times: dict[str, list[float]] = {"ours": [], "baseline": []}
        load = os.getloadavg()[0]
        for i in range(n + 20):   # the first 20 warm both
            pair = [("ours", ours), ("baseline", theirs)][:: 1 if i % 2 else -1]
            for name, gateway in pair:
                took, kind = gateway.ask(size, variant(queries[i % len(queries)]), readonly=True)
                if i >= 20 and kind == "semantic":
                    times[name].append(took)
        cpu = {name: cpu_per_call(gateway, gateway.pid, size, queries)[0]
               for name, gateway in (("ours", ours), ("baseline", theirs))}
        out.append({"size": size, "times": times, "cpu": cpu, "load": (load + os.getloadavg()[0]) / 2})
    return out


def start_baseline(checkout: str, simulator_url: str) -> tuple[str, Callable[[], None]]:
    """The gateway of another checkout (tests.live starts servers from its module's ROOT)."""
    saved, live.ROOT = live.ROOT, Path(checkout).resolve()
    try:
        return start_gateway(simulator_url=simulator_url, extra_env=GATEWAY_ENV)
    finally:
        live.ROOT = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1,1000,10000,100000")
    parser.add_argument("--queries", type=int, default=400, help="timed semantic hits per size (and as many exact)")
    parser.add_argument("--distinct", type=int, default=50, help="distinct semantic queries per size")
    parser.add_argument("--profile", action="store_true", help="py-spy the gateway during the largest size")
    parser.add_argument("--refill", action="store_true", help="rewrite the contexts an earlier run filled")
    parser.add_argument("--baseline", help="another checkout whose gateway to time alternately with this one's")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    if len({s % PROBES for s in sizes}) < len(sizes):
        parser.error(f"sizes must differ modulo {PROBES}")
    log(f"load average {os.getloadavg()}")
    sim_url, stop_sim = start_simulator(fast=True)
    url, stop_gateway = start_gateway(simulator_url=sim_url, extra_env=GATEWAY_ENV)
    compared = None
    try:
        results, shared = semantic_hits(url, sizes, queries=args.queries, distinct=args.distinct,
                                        profile=args.profile, refill=args.refill)
        if args.baseline:
            baseline_url, stop_baseline = start_baseline(args.baseline, sim_url)
            try:
                compared = versus(url, baseline_url, sizes, args.queries, args.distinct)
            finally:
                stop_baseline()
    finally:
        stop_gateway()
        stop_sim()
    report(results, shared, args)
    if compared:
        report_versus(compared, args)


def report_versus(compared: list[dict], args) -> None:
    print(f"\nsemantic hits alternately through this checkout's gateway and {args.baseline}'s, c=1, {args.queries}"
          " per size each; ms; CPU/hit: each gateway's CPU per semantic hit, all threads, 100 hits")
    print(f"{'entries':>8} {'p50 ours':>8} {'baseline':>8} {'ratio':>5} | {'p95 ours':>8} {'baseline':>8} |"
          f" {'CPU/hit ours':>12} {'baseline':>8} | {'load':>4}")
    for r in compared:
        ours, theirs = r["times"]["ours"], r["times"]["baseline"]
        print(f"{r['size']:>8,} {pct(ours, 50):>8.2f} {pct(theirs, 50):>8.2f} {pct(ours, 50) / pct(theirs, 50):>5.2f} |"
              f" {pct(ours, 95):>8.2f} {pct(theirs, 95):>8.2f} | {r['cpu']['ours']:>12.2f} {r['cpu']['baseline']:>8.2f} |"
              f" {r['load']:>4.1f}")


def report(results: list[dict], shared: list[str], args) -> None:
    print(f"\ncache_scale: semantic hits through the gateway, c=1, {args.queries} per size ({args.distinct} distinct"
          " queries), each followed by an exact hit in the same context (the in-run reference: the machine is"
          " shared). Times in ms; CPU/call: the gateway process's CPU per call, all threads, record stage"
          " included, 100 calls of each kind in a run of their own.")
    print(f"{'entries':>8} {'semantic p50':>12} {'p95':>7} | {'exact p50':>9} {'p95':>7} | {'sem-exact':>9} {'ratio':>5} |"
          f" {'CPU/call sem':>12} {'exact':>5} | {'load':>4} | answered as")
    for r in results:
        s50, e50 = pct(r["semantic"], 50), pct(r["exact"], 50)
        print(f"{r['held']:>8,} {s50:>12.2f} {pct(r['semantic'], 95):>7.2f} | {e50:>9.2f} {pct(r['exact'], 95):>7.2f} | "
              f"{s50 - e50:>9.2f} {s50 / e50:>5.2f} | {r['cpu'][0]:>12.2f} {r['cpu'][1]:>5.2f} | {r['load']:>4.1f} | "
              + ", ".join(f"{n} {kind}" for kind, n in sorted(r["answered"].items())))
    print("\nthe semantic lookup (store.SEMANTIC) per size: the planner's choice, then each way forced "
          "(EXPLAIN ANALYZE BUFFERS SERIALIZE, gateway session settings)")
    for r in results:
        print(f"  {r['held']:,} entries, {r['partition']}:")
        print("\n".join(f"    {line}" for line in r["plans"]))
    print(f"  {SHARED:,} entries sharing {results[-1]['partition']} with the {results[-1]['held']:,}-entry context:")
    print("\n".join(f"    {line}" for line in shared))
    for r in results:
        if r["profile"] is not None:
            print(f"\npy-spy of the gateway, semantic hits in the {r['held']:,}-entry context:\n{r['profile']}")
    worst = max(pct(r["semantic"], 50) for r in results)
    print(f"\ntarget (issue 13): semantic hit p50 under 10 ms at every size: {'met' if worst < 10 else 'MISSED'} "
          f"(worst p50 {worst:.2f} ms); load average at the end {os.getloadavg()[0]:.1f} (2 cores, shared)")


if __name__ == "__main__":
    main()
