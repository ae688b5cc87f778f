"""bench/overhead: what the gateway adds on top of the upstream it calls, and what a
cache hit costs end to end.

Starts the upstream simulator (no artificial latency) and the gateway as production runs
it (akaplatform/server.py, production settings) with one worker and with two, then drives
them with wrk:
- miss path: the same non-streaming chat completion, cache off (`x-aka-cache: off`), the
  upstream directly and through the one-worker gateway at concurrency 1 and 32, and the
  two-worker gateway at 32, in alternating rounds (BENCH_ROUNDS, default 3) so the other
  load on a shared machine falls on each alike; medians over rounds. Printed side by side:
  the added latency and the ratio to the upstream's, requests per second per worker for one
  and two workers and their ratio, and the CPU each process spent per request (gateway
  workers, simulator, wrk, and the rest of the machine: Postgres, Redis, the kernel's
  network work, time stolen by the hypervisor) with the share of the machine left idle:
  CPU per request barely moves with the machine's load, where latency and rate do, and
  it bounds what two cores can do at all;
- exact hit: the same request again and again, served from the cache;
- semantic hit: paraphrases of a cached prompt, each embedded and matched (readonly,
  so they stay semantic hits);
and the time to first streamed byte, direct and through the gateway. Then the semantic
hit again, c=1, with the bench context populated with BENCH_POPULATED (default
1000,10000,100000) entries, cumulatively, written by binary COPY: Banking77 training
queries (MiniLM embeddings, the statistics the gateway's misses would leave, answers of a
few hundred tokens), beyond their 10,003 the same queries dressed with greetings and their
vectors moved by a little noise; each size with the plan Postgres picks for the lookup. Run it with
`make bench-overhead` (it uses the project's Postgres and Redis, and a tenant of its own
with no rate limit, or BENCH_RATE_LIMIT requests per minute; AKA_FREE_PORTS keeps its servers
to a range of ports).
"""

import asyncio
import csv
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "akaplatform.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from pgvector.psycopg import register_vector  # noqa: E402
from psycopg.types.json import Jsonb  # noqa: E402

from akaplatform.server import command  # noqa: E402
from apps.cache import store, verifier  # noqa: E402
from apps.cache.decision import RADIUS_K, Candidate, entry_statistic, ranked, update_statistic  # noqa: E402
from apps.cache.embedder import embedder  # noqa: E402
from apps.cache.keys import exact_key  # noqa: E402
from apps.cache.models import DEFAULT_THRESHOLD, CacheSettings  # noqa: E402
from apps.core import pg  # noqa: E402
from tests.live import free_port, start_simulator  # noqa: E402

DURATION = os.environ.get("BENCH_DURATION", "10s")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
POPULATED = [int(n) for n in os.environ.get("BENCH_POPULATED", "1000,10000,100000").split(",") if n]
BANKING77 = ROOT.parent / "shared" / "data" / "banking77" / "train.csv"
ANSWER_CHARS = 1500   # about 350 tokens of English
TTL = timedelta(seconds=CacheSettings._meta.get_field("ttl_seconds").default)   # lookups refuse entries older
MODEL = os.environ.get("BENCH_MODEL", "gpt-4o-mini")
# The bench tenant's requests per minute, for it and its key: 0 (default) is unlimited,
# which costs no Redis round trip; a limit far above the load measures the call that
# a limited tenant makes.
RATE_LIMIT = int(os.environ.get("BENCH_RATE_LIMIT", "0"))
BODY = json.dumps({
    "model": MODEL,
    "messages": [{"role": "system", "content": "You are a support agent."},
                 {"role": "user", "content": "How do I reset my card PIN?"}],
    "max_tokens": 64,
})


PARAPHRASES = [
    "How can I reset my card PIN?", "How do I reset the PIN of my card?", "how do i reset my card pin",
    "How do I reset my card's PIN?", "How do I reset my card PIN please?", "How can I reset the PIN on my card?",
]


def body_for(question: str) -> str:
    return json.dumps({**json.loads(BODY), "messages": [*json.loads(BODY)["messages"][:1],
                                                        {"role": "user", "content": question}]})


def lua_script(key: str, bodies: list[str] | None = None, headers: dict | None = None) -> str:
    """A wrk script posting `bodies` in turn (default: the one BODY)."""
    bodies = bodies or [BODY]
    lines = ['wrk.method = "POST"', 'wrk.headers["Content-Type"] = "application/json"',
             f'wrk.headers["Authorization"] = "Bearer {key}"']
    lines += [f'wrk.headers["{name}"] = "{value}"' for name, value in (headers or {}).items()]
    lines.append("bodies = {" + ", ".join(f"[[{b}]]" for b in bodies) + "}")
    lines.append("n = 0\nrequest = function()\n  n = n + 1\n"
                 "  return wrk.format(nil, nil, nil, bodies[(n % #bodies) + 1])\nend")
    path = Path(tempfile.mkdtemp()) / "post.lua"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def wrk(url: str, script: str, connections: int, watch: dict[str, list[psutil.Process]] | None = None) -> dict:
    """wrk's figures; with `watch`, also the CPU ms per request of each named group of
    processes (and of wrk itself) over the run, of everything else on the machine
    (Postgres, Redis, the kernel's network work, other guests' steal) and the share of
    the machine's CPU time left idle."""
    watch = watch or {}
    before = {name: _cpu(procs) for name, procs in watch.items()}
    machine = _machine()
    proc = subprocess.Popen(["wrk", "-t1", f"-c{connections}", f"-d{DURATION}", "--latency", "-s", script, url],
                            stdout=subprocess.PIPE, text=True)
    load = psutil.Process(proc.pid)
    out, wrk_cpu = "", 0.0
    while proc.poll() is None:
        wrk_cpu = _cpu([load]) or wrk_cpu  # read before wrk exits (its times go with it)
        time.sleep(0.2)
    out = proc.stdout.read()
    if proc.returncode:
        raise SystemExit(f"wrk failed on {url}")
    figures = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}
    requests = int(re.search(r"(\d+) requests in", out).group(1)) or 1
    for name, procs in watch.items():
        figures[f"cpu {name}"] = (_cpu(procs) - before[name]) * 1000 / requests
    figures["cpu wrk"] = wrk_cpu * 1000 / requests
    if watch:
        busy, idle = (after - start for after, start in zip(_machine(), machine, strict=True))
        figures["cpu other"] = busy * 1000 / requests - sum(figures[f"cpu {name}"] for name in (*watch, "wrk"))
        figures["idle"] = idle / (busy + idle)
    for pct in ("50", "90", "99"):
        value, unit = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)", out).groups()
        figures[f"p{pct}"] = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    figures["errors"] = int(errors.group(1)) if errors else 0
    return figures


def _cpu(procs: list[psutil.Process]) -> float:
    """CPU seconds (user + system) of `procs` so far."""
    total = 0.0
    for p in procs:
        try:
            times = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def _machine() -> tuple[float, float]:
    """CPU seconds of all cores so far: busy (stolen by the hypervisor included), idle."""
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + t.irq + t.softirq + t.steal, t.idle + t.iowait


def start_server(server: str, sim_url: str, workers: int) -> tuple[str, subprocess.Popen, list[psutil.Process]]:
    """The gateway as production runs it (akaplatform/server.py) with production settings
    (DEBUG's query logging alone cut a worker's rate several times): its URL, its process
    and its workers' processes."""
    port = free_port()
    env = {"AKA_SIMULATOR_URL": sim_url, "AKA_SHUTDOWN_SECONDS": "20", "DJANGO_DEBUG": "0",
           "DJANGO_SECRET_KEY": "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
           "DJANGO_ALLOWED_HOSTS": "127.0.0.1", "AKA_SSL_REDIRECT": "0"}
    argv = command(server=server, host="127.0.0.1", port=port, workers=workers)
    proc = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                top = psutil.Process(proc.pid)
                # uvicorn serves in its own process with one worker, in children with more.
                workers_seen = [p for p in top.children() if "resource_tracker" not in " ".join(p.cmdline())]
                if workers == 1 or len(workers_seen) == workers:
                    return url, proc, workers_seen or [top]
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"{server} with {workers} workers did not start")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def first_byte_ms(url: str, key: str, n: int = 200) -> float:
    body = BODY[:-1] + ', "stream": true}'
    samples = []
    with httpx.Client(timeout=10) as client:
        for _ in range(n):
            started = time.perf_counter()
            with client.stream("POST", url, content=body, headers={
                    "Authorization": f"Bearer {key}", "Content-Type": "application/json",
                    "x-aka-cache": "off"}) as response:
                chunks = response.iter_raw()
                next(chunks)
                samples.append((time.perf_counter() - started) * 1000)
                for _ in chunks:
                    pass
    return statistics.median(samples)


def bench_context(slug: str) -> tuple[int, str]:
    """The (tenant id, context key) the gateway stored BODY's answer under."""
    with connection.cursor() as cur:
        cur.execute("SELECT e.tenant_id, e.context_key FROM cache_entry e JOIN tenants_tenant t ON t.id = e.tenant_id"
                    " WHERE t.slug = %s AND e.prompt_text = %s", [slug, json.loads(BODY)["messages"][-1]["content"]])
        return cur.fetchone()


def banking77() -> list[tuple[str, str]]:
    with BANKING77.open(newline="") as f:
        rows = [(row["text"], row["category"]) for row in csv.DictReader(f)]
    random.Random(77).shuffle(rows)
    return rows


def answer(category: str, by_category: dict[str, list[str]], rng: random.Random) -> str:
    """Support-agent-sized English: other customers' questions of the same intent."""
    parts = [f"Thanks for getting in touch about {category.replace('_', ' ')}."]
    while sum(map(len, parts)) < ANSWER_CHARS:
        parts.append(rng.choice(by_category[category]))
    return " ".join(parts)


def statistics_after(vectors: np.ndarray) -> list[float | None]:
    """Each entry's statistic once all of `vectors` were written in order, as the gateway's
    misses leave them: from its RADIUS_K nearest earlier entries (exact, by brute force),
    then moved by each later entry that lands among its nearest."""
    stats: list[float | None] = []
    for i, vector in enumerate(vectors):
        sims = vectors[:i] @ vector
        nearest = np.argpartition(-sims, RADIUS_K)[:RADIUS_K] if i > RADIUS_K else range(i)
        for j in nearest:
            stats[j] = update_statistic(stats[j], float(sims[j]))
        stats.append(entry_statistic(vector, [float(sims[j]) for j in nearest]))
    return stats


def entries(rows: list[tuple[str, str]], vectors: np.ndarray, size: int) -> tuple[list, np.ndarray, list]:
    """`size` entries: the Banking77 training queries, then (beyond their number) the same
    queries with a greeting or thanks around them and their vector moved by a little noise
    (cosine ~0.97 to the original): a realistic density without embedding 100,000 texts.
    The copies take their original's statistic."""
    stats = statistics_after(vectors)
    out_rows, out_vectors, out_stats = list(rows), [vectors], list(stats)
    rng = np.random.default_rng(0)
    for round_ in range(1, -(-size // len(rows))):
        before, after = VARIANTS[round_ % len(VARIANTS)], VARIANTS[(round_ // len(VARIANTS)) % len(VARIANTS)]
        out_rows += [(f"{before[0]}{text}{after[1]}", category) for text, category in rows]
        noise = rng.normal(size=vectors.shape).astype(np.float32) * (0.25 / np.sqrt(vectors.shape[1]))
        moved = vectors + noise
        out_vectors.append(moved / np.linalg.norm(moved, axis=1, keepdims=True))
        out_stats += stats
    return out_rows[:size], np.concatenate(out_vectors)[:size], out_stats[:size]


VARIANTS = [("", ""), ("Hi, ", " Thanks."), ("Hello, ", " Thank you."), ("Hey, ", " Thanks!"), ("Hi there, ", " Cheers."),
            ("Good morning, ", " Thanks a lot."), ("Hello again, ", " Many thanks."), ("Hey there, ", " Thank you!"),
            ("Hi team, ", " Thanks in advance."), ("Good evening, ", " Much appreciated.")]
COPY = ("COPY cache_entry (tenant_id, scope, context_key, exact_key, prompt_text, embedding, neighbour_stat, response,"
        " model, expires_at) FROM STDIN (FORMAT BINARY)")


def fill(tenant_id: int, context: str, rows: list[tuple[str, str]], vectors: np.ndarray, stats: list,
         start: int) -> float:
    """Writes rows[start:] by binary COPY in committed chunks of 5,000 (with precomputed
    vectors and statistics, as the gateway's misses would leave them); seconds taken.
    Entries written earlier keep theirs."""
    by_category: dict[str, list[str]] = {}
    for text, category in rows:
        by_category.setdefault(category, []).append(text)
    rng = random.Random(start)
    expires = datetime.now(UTC) + timedelta(days=1)
    started = time.perf_counter()
    connection.ensure_connection()
    raw = connection.connection
    register_vector(raw)
    for lo in range(start, len(rows), 5000):
        with raw.transaction(), raw.cursor() as cur, cur.copy(COPY) as copy:
            copy.set_types(["bigint", "text", "varchar", "varchar", "text", "vector", "float8", "jsonb", "varchar",
                            "timestamptz"])
            for i in range(lo, min(len(rows), lo + 5000)):
                text, category = rows[i]
                content = answer(category, by_category, rng)
                copy.write_row((tenant_id, "", context, exact_key(context, "", text), text, vectors[i], stats[i],
                                Jsonb({"content": content, "tool_calls": None, "finish_reason": "stop",
                                       "usage": {"prompt_tokens": 30, "completion_tokens": len(content) // 4}}),
                                MODEL, expires))
    return time.perf_counter() - started


def analyze(tenant_id: int, context: str) -> None:
    """Fresh statistics for the context's partition, as autovacuum gives it soon after such growth."""
    with connection.cursor() as cur:
        cur.execute("SELECT tableoid::regclass::text FROM cache_entry WHERE tenant_id = %s AND context_key = %s LIMIT 1",
                    [tenant_id, context])
        cur.execute(f"ANALYZE {cur.fetchone()[0]}")


def lookup_plan(tenant_id: int, context: str, vector: np.ndarray, runs: int = 20) -> str:
    """The plan of store.SEMANTIC under the gateway's session settings: nodes, buffers, and the
    median execution and planning times of `runs` EXPLAIN ANALYZEs: the first one on a connection
    runs cold (at 100k entries 4.15 ms of execution and 0.39 ms of planning, where the median of
    20 was 0.28 and 0.11). Every lookup pays the planning too (plan_cache_mode = force_custom_plan)."""
    plans = []
    with connection.cursor() as cur:
        for statement in pg.session_settings():
            cur.execute(statement)
        for _ in range(runs):
            cur.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)" + store.SEMANTIC,
                        {"tenant": tenant_id, "scope": "", "context": context, "vec": str(vector.tolist()), "k": 20,
                         "ttl": TTL})
            plans.append(cur.fetchone()[0][0])
    plan = plans[-1]
    nodes, node = [], plan["Plan"]
    while node:
        nodes.append(node["Node Type"] + (f" {node['Index Name']}" if "Index Name" in node else ""))
        node = (node.get("Plans") or [None])[0]
    buffers = plan["Plan"]["Shared Hit Blocks"] + plan["Plan"]["Shared Read Blocks"]
    return (f"{' > '.join(nodes)}: {statistics.median(p['Execution Time'] for p in plans):.2f} ms, {buffers} buffers,"
            f" planned in {statistics.median(p['Planning Time'] for p in plans):.2f} ms")


async def parts(tenant_id: int, context: str, rounds: int = 30) -> dict[str, float]:
    """Median ms of each part of a semantic lookup, in this process (the gateway's code, no
    HTTP): embedding the paraphrase, the nearest-entries query (vectors and radii, and the
    nearest one's answer), the first stage, the verifier on its best few, and the chosen
    entry's answer when it is not the nearest (else nothing)."""
    times: dict[str, list[float]] = {"embed": [], "nearest": [], "first stage": [], "answer": [], "verifier": []}
    try:
        for _ in range(rounds):
            for question in PARAPHRASES:
                t0 = time.perf_counter()
                vector = embedder().embed([question])[0]
                t1 = time.perf_counter()
                rows = await store.nearest(tenant_id=tenant_id, scope="", context_key=context, vector=vector, k=20,
                                           ttl=TTL)
                t2 = time.perf_counter()
                candidates = [Candidate(r.id, r.similarity, r.embedding, r.neighbour_stat) for r in rows]
                choices = ranked(candidates, DEFAULT_THRESHOLD, verifier.CANDIDATES)
                t3 = time.perf_counter()
                texts = {r.id: r.prompt_text for r in rows}
                served = choices and verifier.choose(question, [(c, a, texts[c.entry_id]) for c, a in choices],
                                                     vector=vector, candidates=candidates, target=0.01)
                t4 = time.perf_counter()
                if served and rows[0].id != served[0].entry_id:
                    await store.answer(tenant_id=tenant_id, scope="", context_key=context, entry_id=served[0].entry_id,
                                       ttl=TTL)
                t5 = time.perf_counter()
                for name, took in zip(times, (t1 - t0, t2 - t1, t3 - t2, t5 - t4, t4 - t3), strict=True):
                    times[name].append(took * 1000)
    finally:
        await pg.close_pools()
    return {name: statistics.median(values) for name, values in times.items()}


def make_tenant() -> tuple[str, str]:
    env = {**os.environ}
    slug = f"bench-{int(time.time())}"
    out = subprocess.run(
        [sys.executable, "manage.py", "create_tenant", "Bench", "--slug", slug, "--owner-email", f"{slug}@bench.local",
         "--plan", "Scale", "--rate-limit", str(RATE_LIMIT), "--key"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    ).stdout
    subprocess.run([sys.executable, "manage.py", "set_cache_threshold", slug, str(DEFAULT_THRESHOLD)], cwd=ROOT, env=env,
                   capture_output=True, check=True)
    return slug, re.search(r"aka_[A-Za-z0-9_-]{43}", out).group(0)


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def compare(key: str, direct: str, one: tuple, two: tuple, sim: list[psutil.Process]) -> dict:
    """The miss path, upstream against one and two gateway workers, in alternating rounds;
    medians over the rounds, printed side by side."""
    (url1, _, workers1), (url2, _, workers2) = one, two
    miss = lua_script(key, headers={"x-aka-cache": "off"})
    runs = [("upstream", 1, direct, []), ("upstream", 32, direct, []), ("gateway 1w", 1, url1, workers1),
            ("gateway 1w", 32, url1, workers1), ("gateway 2w", 32, url2, workers2)]
    got: dict[tuple[str, int], list[dict]] = {}
    for _ in range(ROUNDS):
        for name, conc, url, workers in runs:
            got.setdefault((name, conc), []).append(
                wrk(f"{url}/v1/chat/completions", miss, conc, {"gateway": workers, "simulator": sim}))
    med = {run: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for run, rs in got.items()}
    print(f"miss path (cache off), medians of {ROUNDS} alternating rounds of {DURATION}; wrk -t1")
    print(f"{'target':12} {'conc':>4} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'req/s':>8} {'non-2xx':>7}"
          f" | CPU ms/request: {'gateway':>7} {'simulator':>9} {'wrk':>6} {'other':>6} | idle")
    for (name, conc), r in med.items():
        print(f"{name:12} {conc:>4} {r['p50']:>8.2f} {r['p90']:>8.2f} {r['p99']:>8.2f} {r['rps']:>8.0f} {r['errors']:>7.0f}"
              f" | {'':>15} {r['cpu gateway']:>7.3f} {r['cpu simulator']:>9.3f} {r['cpu wrk']:>6.3f}"
              f" {r['cpu other']:>6.3f} | {r['idle']:>4.0%}")
    up1, gw1 = med[("upstream", 1)], med[("gateway 1w", 1)]
    one32, two32 = med[("gateway 1w", 32)], med[("gateway 2w", 32)]
    print(f"\nadded latency at c=1: p50 {gw1['p50'] - up1['p50']:+.2f} ms (target <= 1.0), "
          f"p90 {gw1['p90'] - up1['p90']:+.2f} ms, p99 {gw1['p99'] - up1['p99']:+.2f} ms; "
          f"gateway/upstream p50 ratio {gw1['p50'] / up1['p50']:.1f}x")
    print(f"req/s per worker at c=32: one worker {one32['rps']:.0f} (target >= 2000), two workers "
          f"{two32['rps'] / 2:.0f} each ({two32['rps']:.0f} in all); two workers / one: "
          f"{two32['rps'] / one32['rps']:.2f}x (target >= 1.8)")
    cores = os.cpu_count() or 1
    per_call = two32["cpu gateway"] + two32["cpu simulator"] + two32["cpu wrk"] + two32["cpu other"]
    print(f"CPU-bound ceiling: a gateway worker given a whole core would do {1000 / one32['cpu gateway']:.0f} req/s "
          f"({one32['cpu gateway']:.3f} ms CPU each); the gateway, the simulator, wrk and the rest of the machine"
          f" (Postgres, Redis, the kernel's network work, steal) together spend {per_call:.3f} ms CPU per call, so"
          f" {cores} cores carry at most {cores * 1000 / per_call:.0f} calls/s through the two-worker gateway"
          f" ({cores * 1000 / per_call / one32['rps']:.2f}x one worker's rate); it"
          f" left {two32['idle']:.0%} of the machine idle")
    return med


def main() -> None:
    print(f"bench/overhead  model={MODEL}  duration={DURATION} per run  rate limit {RATE_LIMIT or 'none'}"
          f"  load average at start {loadavg()}  ({os.cpu_count()} cores)")
    slug, key = make_tenant()
    sim_url, stop_sim = start_simulator(fast=True)
    sim = [p for p in psutil.process_iter(["cmdline"]) if "simulator" in " ".join(p.info["cmdline"] or [])
           and sim_url.rsplit(":", 1)[1] in " ".join(p.info["cmdline"] or [])]
    one = two = None
    try:
        one = start_server("uvicorn", sim_url, 1)
        two = start_server("uvicorn", sim_url, 2)
        direct, via = f"{sim_url}/v1/chat/completions", f"{one[0]}/v1/chat/completions"
        miss, exact = lua_script(key, headers={"x-aka-cache": "off"}), lua_script(key)
        semantic = lua_script(key, [body_for(q) for q in PARAPHRASES], {"x-aka-cache": "readonly"})
        # Warm everything (connections, catalog, key cache, embedder) and cache BODY's answer.
        for url, script in ((direct, miss), (via, miss), (f"{two[0]}/v1/chat/completions", miss), (via, exact),
                            (via, semantic)):
            wrk(url, script, 4)
        compare(key, sim_url, one, two, sim)
        hits = {httpx.post(via, content=body_for(q), headers={"Authorization": f"Bearer {key}",
                "Content-Type": "application/json", "x-aka-cache": "readonly"}).headers["x-aka-cache"]
                for q in PARAPHRASES}
        print(f"\ncache hits through the one-worker gateway (the {len(PARAPHRASES)} paraphrases are answered as: "
              f"{', '.join(sorted(hits))})")
        print(f"{'target':16} {'conc':>4} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'req/s':>9} {'non-2xx':>8}")
        results = {}
        for conc in (1, 32):
            for name, script in (("gateway exact", exact), ("gateway semantic", semantic)):
                r = results[(name, conc)] = wrk(via, script, conc)
                print(f"{name:16} {conc:>4} {r['p50']:>8.2f} {r['p90']:>8.2f} {r['p99']:>8.2f} {r['rps']:>9.0f} "
                      f"{r['errors']:>8}")
        ttfb_direct, ttfb_gw = first_byte_ms(direct, key), first_byte_ms(via, key)
        print(f"time to first streamed byte (median of 200): upstream {ttfb_direct:.2f} ms, gateway {ttfb_gw:.2f} ms, "
              f"added {ttfb_gw - ttfb_direct:+.2f} ms")
        print(f"load average at end {loadavg()}")
        if POPULATED:
            populated(slug, key, via, semantic, results[("gateway semantic", 1)])
    finally:
        for server in (one, two):
            if server:
                stop_server(server[1])
        stop_sim()


def populated(slug: str, key: str, via: str, semantic: str, alone: dict) -> None:
    tenant_id, context = bench_context(slug)
    cached = {json.loads(BODY)["messages"][-1]["content"]}   # COPY has no ON CONFLICT: each text once
    rows = [(t, c) for t, c in banking77() if not (t in cached or cached.add(t))]
    started = time.perf_counter()
    vectors = np.concatenate([embedder().embed([t for t, _ in rows[i:i + 64]]) for i in range(0, len(rows), 64)])
    rows, vectors, stats = entries(rows, vectors, max(POPULATED))
    probe = embedder().embed([PARAPHRASES[0]])[0]
    print(f"\nsemantic hit, c=1, populated context (Banking77 training queries, beyond 10,003 their noisy copies;"
          f" answers ~{ANSWER_CHARS} chars; prepared in {time.perf_counter() - started:.0f} s)")
    print(f"{'entries':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'req/s':>7} {'load s':>7}  answered as; lookup plan")
    print(f"{1:>8} {alone['p50']:>8.2f} {alone['p90']:>8.2f} {alone['p99']:>8.2f} {alone['rps']:>7.0f}")
    written = 0
    for size in POPULATED:
        seconds = fill(tenant_id, context, rows[:size], vectors, stats, written)
        written = size
        analyze(tenant_id, context)
        wrk(via, semantic, 4)   # warm: the gateway's pool reads the new partition's pages
        r = wrk(via, semantic, 1)
        answered = [httpx.post(via, content=body_for(q), headers={"Authorization": f"Bearer {key}",
                    "Content-Type": "application/json", "x-aka-cache": "readonly"}).headers["x-aka-cache"]
                    for q in PARAPHRASES]
        print(f"{size + 1:>8} {r['p50']:>8.2f} {r['p90']:>8.2f} {r['p99']:>8.2f} {r['rps']:>7.0f} {seconds:>7.1f}  "
              f"{', '.join(f'{answered.count(a)} {a}' for a in sorted(set(answered)))}; "
              f"{lookup_plan(tenant_id, context, probe)}")
        print(f"{'':>8} parts, median ms in-process: "
              + ", ".join(f"{name} {ms:.3f}" for name, ms in asyncio.run(parts(tenant_id, context)).items()))


if __name__ == "__main__":
    main()
