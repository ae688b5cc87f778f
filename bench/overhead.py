"""bench/overhead: what the gateway adds on top of the upstream it calls, and what a
cache hit costs end to end.

Starts the upstream simulator (no artificial latency) and one gateway worker process,
then drives both with wrk at concurrency 1 and 32:
- miss path: the same non-streaming chat completion, cache off (`x-aka-cache: off`),
  the upstream called directly and through the gateway; the gateway's added latency;
- exact hit: the same request again and again, served from the cache;
- semantic hit: paraphrases of a cached prompt, each embedded and matched (readonly,
  so they stay semantic hits);
and the time to first streamed byte, direct and through the gateway. Run it with
`make bench-overhead` (it uses the project's Postgres and Redis, and a tenant of its own
with no rate limit).
"""

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.live import start_gateway, start_simulator  # noqa: E402

DURATION = os.environ.get("BENCH_DURATION", "10s")
MODEL = os.environ.get("BENCH_MODEL", "gpt-4o-mini")
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


def wrk(url: str, script: str, connections: int) -> dict:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{DURATION}", "--latency", "-s", script, url],
        capture_output=True, text=True, check=True,
    ).stdout
    figures = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}
    for pct in ("50", "90", "99"):
        value, unit = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)", out).groups()
        figures[f"p{pct}"] = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    figures["errors"] = int(errors.group(1)) if errors else 0
    return figures


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


def make_tenant() -> str:
    env = {**os.environ}
    slug = f"bench-{int(time.time())}"
    out = subprocess.run(
        [sys.executable, "manage.py", "create_tenant", "Bench", "--slug", slug, "--owner-email", f"{slug}@bench.local",
         "--plan", "Scale", "--rate-limit", "0", "--key"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    ).stdout
    subprocess.run([sys.executable, "manage.py", "set_cache_threshold", slug, "0.85"], cwd=ROOT, env=env,
                   capture_output=True, check=True)
    return re.search(r"aka_[A-Za-z0-9_-]{43}", out).group(0)


def main() -> None:
    key = make_tenant()
    sim_url, stop_sim = start_simulator(fast=True)
    gw_url, stop_gw = start_gateway(simulator_url=sim_url)
    try:
        direct, via = f"{sim_url}/v1/chat/completions", f"{gw_url}/v1/chat/completions"
        miss, exact = lua_script(key, headers={"x-aka-cache": "off"}), lua_script(key)
        semantic = lua_script(key, [body_for(q) for q in PARAPHRASES], {"x-aka-cache": "readonly"})
        # Warm everything (connections, catalog, key cache, embedder) and cache BODY's answer.
        for url, script in ((direct, miss), (via, miss), (via, exact), (via, semantic)):
            wrk(url, script, 4)
        hits = {httpx.post(via, content=body_for(q), headers={"Authorization": f"Bearer {key}",
                "Content-Type": "application/json", "x-aka-cache": "readonly"}).headers["x-aka-cache"]
                for q in PARAPHRASES}
        print(f"bench/overhead  model={MODEL}  duration={DURATION} per run  one gateway worker, wrk -t1")
        print(f"(the {len(PARAPHRASES)} paraphrases are answered as: {', '.join(sorted(hits))})\n")
        print(f"{'target':16} {'conc':>4} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'req/s':>9} {'non-2xx':>8}")
        results = {}
        runs = (("upstream", direct, miss), ("gateway miss", via, miss), ("gateway exact", via, exact),
                ("gateway semantic", via, semantic))
        for conc in (1, 32):
            for name, url, script in runs:
                r = results[(name, conc)] = wrk(url, script, conc)
                print(f"{name:16} {conc:>4} {r['p50']:>8.2f} {r['p90']:>8.2f} {r['p99']:>8.2f} {r['rps']:>9.0f} "
                      f"{r['errors']:>8}")
        print()
        for conc in (1, 32):
            d, g = results[("upstream", conc)], results[("gateway miss", conc)]
            print(f"added by the gateway at c={conc}: p50 {g['p50'] - d['p50']:+.2f} ms, p90 {g['p90'] - d['p90']:+.2f} ms,"
                  f" p99 {g['p99'] - d['p99']:+.2f} ms")
        print(f"gateway throughput at c=32 (miss): {results[('gateway miss', 32)]['rps']:.0f} req/s on one worker process")
        print(f"cache hits at c=1, end to end: exact p50 {results[('gateway exact', 1)]['p50']:.2f} ms, "
              f"semantic p50 {results[('gateway semantic', 1)]['p50']:.2f} ms (embedding included)")
        ttfb_direct, ttfb_gw = first_byte_ms(direct, key), first_byte_ms(via, key)
        print(f"time to first streamed byte (median of 200): upstream {ttfb_direct:.2f} ms, gateway {ttfb_gw:.2f} ms, "
              f"added {ttfb_gw - ttfb_direct:+.2f} ms")
    finally:
        stop_gw()
        stop_sim()


if __name__ == "__main__":
    main()
