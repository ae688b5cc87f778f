"""bench/startup: how fast a web worker is ready and how much memory it holds.

For each server (akaplatform/server.py, one worker), BENCH_STARTS times (default 3):
start it, time from spawn to the first 200 on /healthz, then warm it up (a miss, an
exact hit and a semantic hit through /v1/, which loads the embedder, the pools and the
catalog) and read the resident memory (RSS, and PSS: shared pages divided among the
processes mapping them) of the worker process and of the server's supervisor, if any;
then the worker's RSS once it has also served a dashboard page. Targets (issue 14):
ready in under 3 s, under 200 MB per worker. AKA_FREE_PORTS ("8520-8529") keeps the servers
to a range of ports.
Then where a worker's start goes, in a process of its own: the seconds and resident MB
after importing the app (with the top-level packages whose imports took longest, from
`python -X importtime`) and after the start-up hooks (the embedding model, the pools).

Run, with the data services up and the database migrated:
  scripts/services.py run -- env DATABASE_URL=... python bench/startup.py
"""

import collections
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "akaplatform.settings")

import django  # noqa: E402

django.setup()

from akaplatform.server import SERVERS, command  # noqa: E402
from apps.providers.catalog import sync_from_seed  # noqa: E402
from apps.tenants import services  # noqa: E402
from tests.live import free_port, start_simulator  # noqa: E402

STARTS = int(os.environ.get("BENCH_STARTS", "3"))
MB = 1024 * 1024


def key_for_bench() -> str:
    sync_from_seed()
    stamp = time.time_ns()
    tenant, _ = services.tenant_create(name=f"startup-{stamp}", owner_email=f"startup-{stamp}@bench.local",
                                       owner_password=None, plan_name="Scale")
    services.tenant_set_rate_limits(tenant=tenant, rpm=0, key_rpm=0)
    return services.api_key_issue(tenant=tenant, name="bench")[1]


def warm_up(url: str, key: str) -> None:
    headers = {"authorization": f"Bearer {key}"}
    for question in ("How do I reset my card PIN?", "How do I reset my card PIN?", "How can I reset my card's PIN?"):
        httpx.post(f"{url}/v1/chat/completions", headers=headers, timeout=30, json={
            "model": "gpt-4o-mini", "messages": [{"role": "user", "content": question}]}).raise_for_status()
        time.sleep(0.3)  # the miss is stored after its response


def one_start(server: str, sim_url: str, key: str) -> dict:
    port = free_port()
    argv = command(server=server, host="127.0.0.1", port=port, workers=1)
    started = time.monotonic()
    proc = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, "AKA_SIMULATOR_URL": sim_url},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            if proc.poll() is not None or time.monotonic() - started > 120:
                raise SystemExit(f"{server} did not start")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
        ready = time.monotonic() - started
        warm_up(url, key)
        top = psutil.Process(proc.pid)
        children = top.children(recursive=True)
        worker = max(children, key=lambda p: p.memory_info().rss) if children else top
        gateway = worker.memory_full_info()
        # A worker that also serves the site loads its URLconf (admin, DRF, drf-spectacular) on the
        # first page; /v1/ and the probes never do (apps/core/probes.py).
        httpx.get(f"{url}/accounts/login/", timeout=30).raise_for_status()
        return {"ready_s": ready, "worker_mb": gateway.rss / MB, "worker_pss_mb": gateway.pss / MB,
                "site_mb": worker.memory_info().rss / MB,
                "supervisor_mb": top.memory_info().rss / MB if children else 0.0,
                "torch": any("torch" in m.path for m in worker.memory_maps())}
    finally:
        proc.terminate()
        proc.wait(30)


PHASES = """
import asyncio, os, sys, time, psutil
started = time.perf_counter()
def mark(what):
    print(f"  {what:34} {time.perf_counter() - started:6.2f} s {psutil.Process().memory_info().rss / 2**20:6.0f} MB")
import akaplatform.asgi
mark("app imported")
from apps.core.lifecycle import run_startup
asyncio.run(run_startup())
mark("start-up hooks run (model, pools)")
"""


def phases() -> None:
    """Where a worker's start goes (see the module's docstring)."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", PHASES], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT), "DJANGO_DEBUG": "0", "DJANGO_ALLOWED_HOSTS": "*",
                              "DJANGO_SECRET_KEY": "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz"})
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    by_package: collections.Counter = collections.Counter()
    for line in out.stderr.splitlines():
        if line.startswith("import time:") and "self [us]" not in line:
            self_us, _, name = line.removeprefix("import time:").split("|")
            by_package[name.strip().split(".")[0]] += int(self_us)
    print(f"a worker's start, in one process (load average {os.getloadavg()[0]:.1f}):")
    print(out.stdout.rstrip())
    total = sum(by_package.values())
    print(f"  imports: {total / 1e6:.2f} s in all; longest by top-level package: "
          + ", ".join(f"{name} {us / 1e6:.2f}" for name, us in by_package.most_common(10)))


def main() -> None:
    sim_url, stop_sim = start_simulator(fast=True)
    key = key_for_bench()
    try:
        print(f"bench/startup  one worker, {STARTS} starts each; load average {os.getloadavg()[0]:.1f}")
        print(f"{'server':<9} {'ready s (median, max)':>22} {'worker RSS MB':>14} {'PSS MB':>7}"
              f" {'+ a page, RSS MB':>17} {'supervisor MB':>14} torch loaded")
        for server in SERVERS:
            runs = [one_start(server, sim_url, key) for _ in range(STARTS)]
            ready = [r["ready_s"] for r in runs]
            print(f"{server:<9} {statistics.median(ready):>13.2f} {max(ready):>8.2f}"
                  f" {statistics.median(r['worker_mb'] for r in runs):>14.0f}"
                  f" {statistics.median(r['worker_pss_mb'] for r in runs):>7.0f}"
                  f" {statistics.median(r['site_mb'] for r in runs):>17.0f}"
                  f" {statistics.median(r['supervisor_mb'] for r in runs):>14.0f} {any(r['torch'] for r in runs)}")
        phases()
    finally:
        stop_sim()
    print(f"load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
