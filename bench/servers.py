"""bench/servers: granian against uvicorn for this app, one worker each, on the same
machine in the same run, and what each does with in-flight streams on SIGTERM.

Starts the upstream simulator, then each server in turn (the exact command production
runs, akaplatform/server.py), and drives the miss path (cache off) with wrk at
concurrency 1 and 32 in alternating rounds (BENCH_ROUNDS, default 3, of BENCH_DURATION
each), so load from anything else on the machine falls on both alike; the figures are the
medians over rounds. The upstream is measured directly too, so added latency is
visible. Then, per server: a stream paced at 20 tokens/s is started, the server gets
SIGTERM after the first chunk, and the bench reports whether the stream completed, how
long the server took to exit, and whether the call's ledger row exists.

Run, with the data services up:
  scripts/services.py run -- env DATABASE_URL=... python bench/servers.py
(the database must be migrated; it makes a tenant of its own with no rate limit).
"""

import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from overhead import lua_script, start_server, wrk  # noqa: E402  (also sets Django up)

from akaplatform.server import SERVERS  # noqa: E402
from apps.billing.models import CallRecord  # noqa: E402
from apps.providers.catalog import sync_from_seed  # noqa: E402
from apps.tenants import services  # noqa: E402
from tests.live import start_simulator  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
PATH = "/v1/chat/completions"


def bench_tenant():
    sync_from_seed()
    stamp = int(time.time())
    tenant, _ = services.tenant_create(name=f"servers-{stamp}", owner_email=f"servers-{stamp}@bench.local",
                                       owner_password=None, plan_name="Scale")
    services.tenant_set_rate_limits(tenant=tenant, rpm=0, key_rpm=0)
    return tenant, services.api_key_issue(tenant=tenant, name="bench")[1]


def sigterm_during_a_stream(url: str, proc: subprocess.Popen, key: str, tenant) -> dict:
    body = {"model": "gpt-4o-mini", "stream": True, "max_tokens": 80,
            "messages": [{"role": "user", "content": "Tell me a long story [[pace:ttft=50 tps=20]]"}]}
    result: dict = {}
    first = threading.Event()

    def client() -> None:
        with httpx.stream("POST", f"{url}{PATH}", json=body, timeout=60,
                          headers={"authorization": f"Bearer {key}", "x-aka-cache": "off"}) as response:
            result["request_id"] = response.headers.get("x-request-id")
            text = ""
            try:
                for chunk in response.iter_text():
                    first.set()
                    text += chunk
            except httpx.HTTPError as exc:
                result["error"] = repr(exc)
            result["completed"] = text.rstrip().endswith("data: [DONE]")
        first.set()

    thread = threading.Thread(target=client)
    thread.start()
    first.wait(30)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    thread.join(60)
    try:
        proc.wait(60)
        result["exit_s"] = round(time.monotonic() - started, 2)
    except subprocess.TimeoutExpired:
        proc.kill()
        result["exit_s"] = None
    rows = CallRecord.objects.for_tenant(tenant).filter(request_id=result.get("request_id") or "")
    result["ledger_row"] = rows.exists()
    return result


def main() -> None:
    sim_url, stop_sim = start_simulator(fast=True)
    tenant, key = bench_tenant()
    script = lua_script(key, headers={"x-aka-cache": "off"})
    figures: dict[tuple[str, int], list[dict]] = {}
    try:
        servers = {name: start_server(name, sim_url, 1)[:2] for name in SERVERS}
        for url, _ in servers.values():
            wrk(f"{url}{PATH}", script, 4)  # warm
        for _ in range(ROUNDS):
            for name, (url, _) in [("upstream", (sim_url, None)), *servers.items()]:
                for conc in (1, 32):
                    figures.setdefault((name, conc), []).append(wrk(f"{url}{PATH}", script, conc))
        print(f"bench/servers  {ROUNDS} rounds x {os.environ.get('BENCH_DURATION', '10s')}  one worker, wrk -t1,"
              f" miss path (cache off); medians over rounds; load average {os.getloadavg()[0]:.1f}")
        print(f"{'server':<10} {'c':>3} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
        for (name, conc), runs in figures.items():
            med = {k: statistics.median(r[k] for r in runs) for k in ("rps", "p50", "p99", "errors")}
            print(f"{name:<10} {conc:>3} {med['rps']:>9.0f} {med['p50']:>8.2f} {med['p99']:>8.2f} {med['errors']:>7.0f}")
        print("SIGTERM during a 4 s stream:")
        for name, (url, proc) in servers.items():
            print(f"  {name:<8} {json.dumps(sigterm_during_a_stream(url, proc, key, tenant))}")
    finally:
        for _, proc in servers.values():
            if proc.poll() is None:
                proc.kill()
        stop_sim()


if __name__ == "__main__":
    main()
