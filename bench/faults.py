"""The fault bench: a sustained mixed load on a private stack while its parts fail, then
exact accounting. `make bench-faults`; loopback only, bounded in time (a few minutes).

Everything runs here and nowhere else: a private PostgreSQL and Redis (bench/private.py,
in a temporary folder), the upstream simulator, the production server
(`python -m akaplatform.server`, two uvicorn workers under uvicorn's supervisor), a Celery
worker and beat, the Stripe fake. 16 clients (httpx) send misses, exact and semantic
cache candidates, OpenAI and Anthropic streams, routed (`model: "auto"`) and speculated
(cascade) calls while the bench, in turn: kills -9 a web worker, kills -9 the Celery
worker (and starts it again after a few seconds, as its supervisor would), kills Redis
and starts it again, stops PostgreSQL (immediate mode: every connection drops) and
starts it again, makes the simulator answer 500s for the cheap model, then stall, and
makes the Stripe fake fail its meter events.

Afterwards, once the spool and the meter outbox have drained (bounded), it asserts
exactly: every complete 2xx a client saw has one ledger row, billable; no other row is
billable; no request id is twice in the ledger; the Stripe fake's meter total and the
invoice (closed at the end) equal the billable rows of each tenant; and the gateway
answers by itself after the last fault. It prints, per fault, the calls that failed
(and of them, those already under way when it struck) and the seconds of
unavailability: the 0.5 s slots in which calls begun after the fault finished and none
succeeded.

    python bench/faults.py [--clients 16] [--phase 20] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.private import PrivateServices  # noqa: E402
from tests.live import kill_group, stop_group  # noqa: E402

PY = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable
WEB_PORT = int(os.environ.get("AKA_FAULTS_PORT", "8450"))
SIM_PORT = WEB_PORT + 1
SLOT = 0.5
METER_EVENTS = "/v1/billing/meter_events"
EXACT = [f"What does status code {code} mean in HTTP?" for code in (200, 301, 404, 418, 500, 503)]
# Asked once each at the start; the load then asks the second phrasing.
SEMANTIC = [("How do I reverse a list in Python?", "How can I reverse a Python list?"),
            ("What is the boiling point of water at sea level?", "At sea level, what is water's boiling point?"),
            ("Explain what a mutex is.", "Please explain what a mutex is."),
            ("Give me a synonym for happy.", "Give me a synonym of happy.")]


# --- processes ------------------------------------------------------------------------


class Proc:
    """One child process in its own session, its output in the bench's folder."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], folder: Path) -> None:
        self.name, self.argv, self.env, self.folder = name, argv, env, folder
        self.proc: subprocess.Popen | None = None

    def start(self) -> Proc:
        with open(self.folder / f"{self.name}.log", "ab") as log:
            self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        return self

    def kill(self) -> None:
        if self.proc:
            kill_group(self.proc)

    def stop(self) -> None:
        if self.proc:
            stop_group(self.proc, timeout=40)


def wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {timeout:.0f} s")


def until(what: str, check, timeout: float, every: float = 0.5) -> float:
    """Seconds until `check()` is true; raises after `timeout`."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"gave up waiting {timeout:.0f} s for {what}")
        time.sleep(every)
    return time.monotonic() - start


# --- the load -------------------------------------------------------------------------


@dataclass
class Seen:
    """One call as its client saw it."""

    kind: str
    tenant: str
    started: float
    finished: float = 0.0
    status: int = 0                # 0: no HTTP answer (connection refused or dropped)
    complete: bool = False         # the whole body, or a stream through its end marker
    request_id: str = ""
    cache: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300 and self.complete


@dataclass
class Load:
    keys: dict[str, str]
    url: str
    clients: int
    stop: threading.Event = field(default_factory=threading.Event)
    seen: list[Seen] = field(default_factory=list)

    KINDS = (("miss", 3), ("exact", 2), ("semantic", 1), ("stream", 2), ("anthropic_stream", 1),
             ("routed", 2), ("speculated", 2))

    def request(self, kind: str, rng: random.Random) -> tuple[str, str, dict]:
        """(tenant, path, body) for one call of `kind`."""
        fresh = f"Note {uuid.uuid4().hex[:12]}: summarise it in one line."
        if kind == "exact":
            return "plain", "/v1/chat/completions", _openai(rng.choice(EXACT))
        if kind == "semantic":
            return "plain", "/v1/chat/completions", _openai(rng.choice(SEMANTIC)[1])
        if kind == "stream":
            return "plain", "/v1/chat/completions", _openai(fresh, stream=True)
        if kind == "anthropic_stream":
            return "plain", "/v1/messages", {"model": "claude-haiku-4-5", "max_tokens": 64, "stream": True,
                                             "messages": [{"role": "user", "content": fresh}]}
        if kind == "routed":
            return "plain", "/v1/chat/completions", _openai(fresh, model="auto")
        if kind == "speculated":
            return "cascade", "/v1/chat/completions", _openai(fresh, model="auto")
        return "plain", "/v1/chat/completions", _openai(fresh)

    async def call(self, client: httpx.AsyncClient, kind: str, tenant: str, path: str, body: dict,
                   t0: float) -> Seen:
        seen = Seen(kind=kind, tenant=tenant, started=time.monotonic() - t0)
        headers = {"authorization": f"Bearer {self.keys[tenant]}"}
        try:
            async with client.stream("POST", path, json=body, headers=headers) as response:
                seen.status = response.status_code
                seen.request_id = response.headers.get("x-request-id", "")
                seen.cache = response.headers.get("x-aka-cache", "")
                if body.get("stream") and response.status_code == 200:
                    end = b"data: [DONE]" if path.endswith("completions") else b"event: message_stop"
                    text = b""
                    async for chunk in response.aiter_bytes():
                        text += chunk
                    seen.complete = end in text and b'"error"' not in text
                    if not seen.complete:
                        seen.error = "stream ended without its end marker"
                else:
                    await response.aread()
                    seen.complete = True
                    if response.status_code >= 400:
                        seen.error = response.json().get("error", {}).get("type", "") or response.text[:80]
        except httpx.HTTPError as exc:
            seen.error = type(exc).__name__
        seen.finished = time.monotonic() - t0
        return seen

    async def client(self, number: int, t0: float) -> None:
        rng = random.Random(number)
        kinds, weights = zip(*self.KINDS, strict=True)
        async with httpx.AsyncClient(base_url=self.url, timeout=60,
                                     limits=httpx.Limits(max_connections=1)) as client:
            while not self.stop.is_set():
                kind = rng.choices(kinds, weights)[0]
                tenant, path, body = self.request(kind, rng)
                seen = await self.call(client, kind, tenant, path, body, t0)
                self.seen.append(seen)
                if not seen.ok:
                    await asyncio.sleep(0.1)  # a client backs off a little after a failure

    def run(self, t0: float) -> None:
        async def everyone():
            await asyncio.gather(*(self.client(n, t0) for n in range(self.clients)))

        asyncio.run(everyone())


def _openai(text: str, *, model: str = "gpt-4o-mini", stream: bool = False) -> dict:
    body = {"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": text}]}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    return body


# --- the bench ------------------------------------------------------------------------


class Bench:
    def __init__(self, args) -> None:
        self.args = args
        self.services = PrivateServices(prefix="aka-faults-")
        self.folder = self.services.folder
        self.procs: dict[str, Proc] = {}
        self.faults: list[tuple[str, float]] = []   # (name, seconds since the load started)

    def settings(self) -> dict[str, str]:
        """The environment every process of the private stack shares, the bench's own included."""
        s = self.services
        return {
            "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "DJANGO_SETTINGS_MODULE": "akaplatform.settings",
            "DJANGO_DEBUG": "", "DJANGO_SECRET_KEY": secrets.token_urlsafe(48), "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
            "AKA_SSL_REDIRECT": "0", "DATABASE_URL": s.database_url, "REDIS_URL": s.redis_url(0),
            "AKA_SIMULATOR_URL": f"http://127.0.0.1:{SIM_PORT}", "AKA_BASE_URL": f"http://127.0.0.1:{WEB_PORT}",
            "AKA_LEDGER_SPOOL_DIR": str(self.folder / "spool"), "AKA_STRIPE_FAKE": "1", "STRIPE_SECRET_KEY": "",
            "AKA_METER_WINDOW_SECONDS": "2", "AKA_METER_OUTBOX_EVERY": "1", "AKA_METER_RETRY_BASE": "0.5",
            "AKA_METER_RETRY_MAX": "2", "AKA_METER_LEASE_SECONDS": "5",
            # The cheap model gives up after 2 s without a byte and falls back.
            "AKA_UPSTREAM_STALL_TIMEOUTS": "gpt-4o-mini=2", "AKA_BREAKER_COOLDOWN": "5",
            "AKA_WORKERS": "2", "AKA_HOST": "127.0.0.1", "AKA_PORT": str(WEB_PORT), "AKA_SHUTDOWN_SECONDS": "10",
            "AKA_LOG_FORMAT": "text",
        }

    # Set-up

    def start(self) -> None:
        s = self.services
        s.postgres_init()
        s.redis_start()
        os.environ.update(self.settings())
        env = dict(os.environ)
        subprocess.run([PY, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
        self.seed()
        self.procs = {
            "simulator": Proc("simulator", [PY, "-m", "simulator", "--host", "127.0.0.1", "--port", str(SIM_PORT)],
                              env, self.folder),
            "web": Proc("web", [PY, "-m", "akaplatform.server"], env, self.folder),
            "worker": Proc("worker", [PY, "-m", "celery", "-A", "akaplatform", "worker", "--concurrency", "2",
                                      "--loglevel", "WARNING", "--without-mingle", "--without-gossip"], env, self.folder),
            "beat": Proc("beat", [PY, "-m", "celery", "-A", "akaplatform", "beat", "--loglevel", "WARNING",
                                  "--schedule", str(self.folder / "beat-schedule")], env, self.folder),
        }
        for proc in self.procs.values():
            proc.start()
        wait_http(f"http://127.0.0.1:{SIM_PORT}/_sim/health", 60)
        wait_http(f"http://127.0.0.1:{WEB_PORT}/healthz", 180)
        from apps.billing import accounts

        until("the worker to create the tenants' Stripe customers", lambda: not accounts.customers_missing(), 120)
        self.warm()

    def seed(self) -> None:
        import django

        django.setup()
        from apps.providers.catalog import sync_from_seed
        from apps.routing.services import routing_settings_update
        from apps.tenants import services as tenants

        sync_from_seed()
        self.tenants, self.keys = {}, {}
        for name in ("plain", "cascade"):
            tenant, owner = tenants.tenant_create(name=f"faults-{name}", owner_email=f"{name}@faults.local",
                                                  owner_password=None, plan_name="Scale", slug=f"faults-{name}")
            tenants.tenant_set_rate_limits(tenant=tenant, rpm=0, key_rpm=0)
            self.keys[name] = tenants.api_key_issue(tenant=tenant, name="bench", created_by=owner)[1]
            self.tenants[name] = tenant
        routing_settings_update(tenant=self.tenants["cascade"], speculation="cascade")

    def warm(self) -> None:
        """The first phrasings of the semantic prompts and the exact prompts, so the load's
        calls can hit; these calls count in the accounting like any other."""
        load = Load(self.keys, f"http://127.0.0.1:{WEB_PORT}", 1)

        async def ask():
            async with httpx.AsyncClient(base_url=load.url, timeout=60) as client:
                for text in [*EXACT, *(first for first, _ in SEMANTIC)]:
                    load.seen.append(await load.call(client, "warm", "plain", "/v1/chat/completions",
                                                     _openai(text), 0.0))

        asyncio.run(ask())
        self.warmed = load.seen
        time.sleep(1)  # cache writes follow the answers

    # Faults

    def mark(self, name: str) -> None:
        self.faults.append((name, time.monotonic() - self.t0))
        print(f"[faults] {time.monotonic() - self.t0:6.1f} s  {name}", flush=True)

    def sim(self, method: str, body: dict | None = None) -> None:
        httpx.request(method, f"http://127.0.0.1:{SIM_PORT}/_sim/faults", json=body, timeout=5).raise_for_status()

    def schedule(self) -> list[tuple[str, object]]:
        from apps.billing.stripe_fake import Fault

        web = psutil.Process(self.procs["web"].proc.pid)

        def workers() -> set[int]:
            # uvicorn's live workers, not multiprocessing's resource tracker beside them.
            found = set()
            for child in web.children():
                try:
                    if "spawn_main" in " ".join(child.cmdline()):
                        found.add(child.pid)
                except psutil.Error:  # gone, or a zombie not yet reaped
                    pass
            return found

        def kill_web_worker():
            before = workers()
            assert len(before) >= 2, f"the server runs {len(before)} worker(s)"
            victim = min(before)
            os.kill(victim, signal.SIGKILL)
            took = until("the supervisor to start a new worker", lambda: len(workers() - before) == 1, 120, every=0.1)
            print(f"[faults]         worker {victim} killed; its replacement started after {took:.1f} s "
                  "(ready once its start-up is done)", flush=True)

        def kill_celery_worker():
            self.procs["worker"].kill()
            time.sleep(5)
            self.procs["worker"].start()

        def restart_redis():
            self.services.redis_kill()
            time.sleep(3)
            self.services.redis_start()

        def restart_postgres():
            self.services.postgres_stop()
            time.sleep(5)
            self.services.postgres_start()

        def simulator_500s():
            self.sim("POST", {"model": "gpt-4o-mini", "kind": "500", "times": None})
            time.sleep(10)
            self.sim("DELETE")

        def simulator_stalls():
            self.sim("POST", {"model": "gpt-4o-mini", "kind": "stall", "times": None})
            time.sleep(10)
            self.sim("DELETE")

        def stripe_fails():
            self.fake.fail(Fault.SERVER_ERROR, seconds=15, path=METER_EVENTS)
            self.fake.fail(Fault.TIMEOUT, times=5, path=METER_EVENTS)

        return [("web worker killed -9", kill_web_worker), ("celery worker killed -9, back after 5 s", kill_celery_worker),
                ("redis killed -9, back after 3 s", restart_redis),
                ("postgres stopped (immediate), back after 5 s", restart_postgres),
                ("simulator: gpt-4o-mini answers 500 for 10 s", simulator_500s),
                ("simulator: gpt-4o-mini stalls for 10 s", simulator_stalls),
                ("stripe fake fails meter events for 15 s", stripe_fails)]

    def run(self) -> None:
        import redis

        from apps.billing.stripe_fake import FakeStripe

        self.fake = FakeStripe(redis.Redis.from_url(self.services.redis_url(0)))
        self.load = Load(self.keys, f"http://127.0.0.1:{WEB_PORT}", self.args.clients)
        self.t0 = time.monotonic()
        runner = threading.Thread(target=self.load.run, args=(self.t0,))
        runner.start()
        try:
            phase = self.args.phase
            time.sleep(phase)  # undisturbed: the baseline
            for name, fault in self.schedule():
                self.mark(name)
                fault()
                time.sleep(phase)
            self.mark("no fault: recovered?")
            time.sleep(phase)
        finally:
            self.load.stop.set()
            runner.join()
        self.end = time.monotonic() - self.t0

    # Accounting

    def drain(self) -> float | None:
        """Seconds until the spool is empty and every billable row is on an acked meter window."""
        from django.db import OperationalError, connections

        from apps.billing.models import CallRecord, MeterWindow

        spool = self.folder / "spool" / "pending"

        def drained() -> bool:
            if spool.exists() and any(spool.glob("*.jsonl")):
                return False
            rows = CallRecord.objects.unscoped_across_all_tenants()
            windows = MeterWindow.objects.unscoped_across_all_tenants()
            try:
                return (not rows.filter(billable=True, meter_window=None).exists()
                        and not windows.exclude(state=MeterWindow.State.ACKED).exists())
            except OperationalError:  # this process's connection died with the restarted PostgreSQL
                connections.close_all()
                return False

        try:
            waited = until("the spool and the meter outbox to drain", drained, 180, every=1)
        except TimeoutError as exc:
            print(f"[faults] {exc}: checking as it stands")
            return None
        time.sleep(3)  # a few more outbox runs: a double send would show now
        return waited

    def check(self) -> list[str]:
        from datetime import UTC, datetime

        from django.db.models import Count, Sum

        from apps.billing import invoices
        from apps.billing.models import BillingAccount, CallRecord

        failures = []
        seen = [*self.warmed, *self.load.seen]
        delivered = {s.request_id: s for s in seen if s.ok}
        records = CallRecord.objects.unscoped_across_all_tenants()
        by_id = Counter(records.values_list("request_id", flat=True))
        billable = set(records.filter(billable=True).values_list("request_id", flat=True))
        missing = [rid for rid in delivered if by_id[rid] == 0]
        unbilled = [rid for rid in delivered if by_id[rid] and rid not in billable]
        twice = [rid for rid, n in by_id.items() if n > 1]
        extra = sorted(billable - set(delivered))
        print(f"\ncalls seen by clients: {len(seen)}; complete 2xx: {len(delivered)}; ledger rows: {sum(by_id.values())}; "
              f"billable rows: {len(billable)}")
        for label, ids in (("2xx without a ledger row", missing), ("2xx whose row is not billable", unbilled),
                           ("request ids in the ledger more than once", twice),
                           ("billable rows no client saw complete", extra)):
            print(f"  {label}: {len(ids)}" + (f"  e.g. {ids[:3]}" if ids else ""))
            if ids:
                failures.append(f"{len(ids)} {label}")
        if missing:
            kinds = Counter((delivered[rid].kind, self.phase_of(delivered[rid].finished)) for rid in missing)
            print(f"    missing rows by (kind, phase): {dict(kinds)}")
        period = invoices.Period.containing(datetime.now(UTC))
        for name, tenant in self.tenants.items():
            rows = records.filter(tenant_id=tenant.pk, billable=True).aggregate(n=Count("id"), cents=Sum("price_cents"))
            customer = BillingAccount.objects.for_tenant(tenant).get().stripe_customer_id
            metered = self.fake.usage(customer)
            invoice = invoices.period_close(tenant_id=tenant.pk, period=period)
            print(f"  tenant {name}: billable rows {rows['n']} ({rows['cents'] or 0} c); Stripe meter {metered}; "
                  f"invoice {invoice.calls} calls, subtotal {invoice.subtotal_cents} c")
            if not (rows["n"] == metered == invoice.calls and (rows["cents"] or 0) == invoice.subtotal_cents):
                failures.append(f"tenant {name}: ledger, meter and invoice disagree")
        return failures

    def phase_of(self, at: float) -> str:
        name = "baseline"
        for fault, start in self.faults:
            if at >= start:
                name = fault
        return name

    def availability(self) -> None:
        """Per phase: calls that finished in it, those that failed (and of them, those
        already under way when the fault struck), and the seconds of unavailability: 0.5 s
        slots in which calls started after the fault finished and none succeeded."""
        seen = self.load.seen
        print(f"\n{'phase':48} {'calls':>6} {'failed':>6} {'in flight':>9} {'unavailable s':>13} {'max wait s':>10}"
              "  failures")
        phases = [("baseline", 0.0), *self.faults]
        for (name, start), (_, stop) in zip(phases, [*self.faults, ("end", self.end)], strict=True):
            inside = [s for s in seen if start <= s.finished < stop]
            failed = [s for s in inside if not s.ok]
            slots: dict[int, list[Seen]] = defaultdict(list)
            for s in inside:
                if s.started >= start:
                    slots[int(s.finished / SLOT)].append(s)
            down = sum(1 for done in slots.values() if not any(s.ok for s in done))
            caught = sum(1 for s in failed if s.started < start)
            why = Counter(f"{s.status or ''}{s.error and ' ' + s.error}".strip() for s in failed)
            longest = max((s.finished - s.started for s in inside), default=0)
            print(f"{name:48} {len(inside):6} {len(failed):6} {caught:9} {down * SLOT:13.1f} {longest:10.1f}  "
                  f"{', '.join(f'{k}: {v}' for k, v in why.most_common(4))}")
        mix = Counter((s.kind, s.cache) for s in seen if s.ok)
        print("\nload mix (complete 2xx by kind and x-aka-cache): "
              + ", ".join(f"{k}/{c or '-'} {n}" for (k, c), n in sorted(mix.items())))

    def recovered(self) -> list[str]:
        """After the last fault, with nobody's help: a few calls of each kind answer. A 503
        with Retry-After is asked again once, as the OpenAI and Anthropic SDKs do: the
        first call to take a pool connection that a PostgreSQL restart left broken, in a
        worker that has not used it since, gets one (counted and printed)."""
        gone = [name for name, proc in self.procs.items() if proc.proc.poll() is not None]
        if gone:  # this bench kills by process id only, and starts again what it killed
            print(f"[faults] ABORTED: {', '.join(gone)} died without the bench killing it (from outside?)")
            raise SystemExit(2)
        probe = Load(self.keys, f"http://127.0.0.1:{WEB_PORT}", 1)

        async def ask():
            async with httpx.AsyncClient(base_url=probe.url, timeout=60) as client:
                rng = random.Random(99)
                for kind, _ in Load.KINDS:
                    for _ in range(2):
                        tenant, path, body = probe.request(kind, rng)
                        seen = await probe.call(client, kind, tenant, path, body, 0.0)
                        if seen.status == 503:
                            retried.append(seen)
                            await asyncio.sleep(1)
                            seen = await probe.call(client, kind, tenant, path, body, 0.0)
                        probe.seen.append(seen)

        retried: list[Seen] = []
        asyncio.run(ask())
        self.warmed += probe.seen + retried  # the accounting covers these calls too
        bad = [f"{s.kind}: {s.status} {s.error}" for s in probe.seen if not s.ok]
        print(f"\nafter the faults: {len(probe.seen) - len(bad)} of {len(probe.seen)} probe calls answered 2xx"
              f" ({len(retried)} after one retry of a 503)")
        return [f"not recovered: {', '.join(bad)}"] if bad else []

    def close(self, keep: bool) -> None:
        for proc in reversed(self.procs.values()):
            proc.stop()
        self.services.close(keep=keep)
        if keep:
            print(f"kept {self.folder} (logs, data)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (8-32)")
    parser.add_argument("--phase", type=float, default=20.0, help="seconds of load before and after each fault")
    parser.add_argument("--keep", action="store_true",
                        help="keep the private stack's folder (logs, data); kept anyway when a check fails")
    args = parser.parse_args()
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)  # this process's pool across the restart: expected
    started = time.monotonic()
    bench = Bench(args)
    failures = ["the bench did not finish"]
    try:
        bench.start()
        print(f"[faults] private stack in {bench.folder}; {args.clients} clients; load average "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
        bench.run()
        failures = bench.recovered()
        bench.availability()
        waited = bench.drain()
        if waited is not None:
            print(f"\nspool and meter outbox drained {waited:.1f} s after the load")
        failures += bench.check()
    finally:
        bench.close(keep=args.keep or bool(failures))
    print(f"\nload average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; bench took {time.monotonic() - started:.0f} s")
    if failures:
        print("FAILED: " + "; ".join(failures))
        raise SystemExit(1)
    print("OK: every complete 2xx has exactly one billable ledger row; meter and invoices equal the ledger")


if __name__ == "__main__":
    main()
