"""Helpers that start real processes for tests.

start_simulator() and start_gateway() run the upstream simulator and the gateway (uvicorn
serving akaplatform.asgi) as subprocesses on free loopback ports and return once each
answers its health check.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def _python() -> str:
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def free_port() -> int:
    """A free loopback port: any, or the first free one of AKA_FREE_PORTS ("8560-8569"), so
    that benches run side by side on one machine keep to the ports they were given."""
    span = os.environ.get("AKA_FREE_PORTS")
    low, high = map(int, span.split("-")) if span else (0, 0)
    for port in range(low, high + 1):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RuntimeError(f"no free port in AKA_FREE_PORTS={span}")


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Linux: the simulator gets SIGTERM when the process that started it dies, so a killed
    test run leaves no server behind (the thread calling start_simulator must outlive it)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL to a process started in a session of its own and to its children: nothing
    gets to clean up or record anything."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def stop_group(proc: subprocess.Popen, timeout: float) -> None:
    """SIGTERM to the process's group, then SIGKILL if it has not gone within `timeout` s."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc)


def _stopper(proc: subprocess.Popen, log) -> Callable[[], None]:
    def stop() -> None:
        atexit.unregister(stop)
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        log.close()

    return stop


def start_server(argv: list[str], health_path: str, *, env: dict[str, str] | None = None, name: str = "server",
                 timeout: float = 30.0, log_path: Path | None = None) -> tuple[str, Callable[[], None]]:
    """Runs `argv` (with `{port}` filled in with a free loopback port) and returns
    (base_url, stop) once GET health_path answers 200. `stop()` is idempotent and also
    runs at interpreter exit. Its output goes to `log_path` if given."""
    last_error: Exception | None = None
    for _attempt in range(3):  # a free port can be taken between probing and binding
        port = free_port()
        log = open(log_path, "w+b") if log_path else tempfile.TemporaryFile()  # noqa: SIM115  (closed by stop)
        proc = subprocess.Popen(
            [a.replace("{port}", str(port)) for a in argv],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        base_url = f"http://127.0.0.1:{port}"
        stop = _stopper(proc, log)
        atexit.register(stop)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"{base_url}{health_path}", timeout=1).status_code == 200:
                    return base_url, stop
            except httpx.HTTPError as exc:
                last_error = exc
            time.sleep(0.05)
        log.seek(0)
        output = log.read().decode(errors="replace")
        stop()
        last_error = RuntimeError(f"{name} on port {port} did not start:\n{output[-4000:]}")
    raise RuntimeError(str(last_error))


def start_simulator(fast: bool = True, replay: str | os.PathLike | None = None) -> tuple[str, Callable[[], None]]:
    """The upstream simulator; with `fast`, no artificial latency; with `replay`, the
    recorded answers of that data directory (replay mode)."""
    argv = [_python(), "-m", "simulator", "--host", "127.0.0.1", "--port", "{port}"]
    argv += (["--fast"] if fast else []) + (["--replay", str(replay)] if replay else [])
    return start_server(argv, "/_sim/health", name="simulator",
                        env={"AKA_SIMULATOR_FAST": "1" if fast else "", "AKA_SIMULATOR_REPLAY": ""})


def start_gateway(*, simulator_url: str, database_url: str | None = None, redis_url: str | None = None,
                  extra_env: dict[str, str] | None = None, workers: int = 1,
                  log_path: Path | None = None) -> tuple[str, Callable[[], None]]:
    """The real ASGI app under uvicorn, calling providers through `simulator_url`."""
    env = {"AKA_SIMULATOR_URL": simulator_url, **(extra_env or {})}
    if database_url:
        env["DATABASE_URL"] = database_url
    if redis_url:
        env["REDIS_URL"] = redis_url
    argv = [_python(), "-m", "uvicorn", "akaplatform.asgi:application", "--host", "127.0.0.1", "--port", "{port}",
            "--workers", str(workers), "--no-access-log", "--loop", "uvloop", "--http", "httptools"]
    # The first start on a machine also exports the embedding model (several seconds).
    return start_server(argv, "/healthz", env=env, name="gateway", timeout=180, log_path=log_path)


def start_production_server(*, env: dict[str, str], workers: int = 1,
                            server: str | None = None) -> tuple[str, subprocess.Popen]:
    """The production server command (akaplatform/server.py) on a free loopback port;
    (base_url, process) once /healthz answers, for tests that signal or kill it."""
    from akaplatform.server import command

    port = free_port()
    proc = subprocess.Popen(command(server=server, host="127.0.0.1", port=port, workers=workers, python=_python()),
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
    atexit.register(lambda: proc.poll() is None and proc.kill())
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return url, proc
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the production server did not start")


_SERVE_THEN_LIST_MODULES = """
import asyncio, json, sys
from akaplatform.asgi import application
from tests.asgi import http_scope
async def get(path, headers):
    status, asked = [], False
    async def receive():
        nonlocal asked
        if not asked:
            asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # no disconnect while the response is written
    async def send(message):
        if message["type"] == "http.response.start":
            status.append(message["status"])
    await application(http_scope("GET", path, [(b"host", b"127.0.0.1"),
                                                 *((k.encode(), v.encode()) for k, v in headers.items())]),
                      receive, send)
    return status[0]
asked, watched = json.loads(sys.argv[1])
print(json.dumps([[asyncio.run(get(path, headers)) for path, headers in asked],
                  sorted(m for m in watched if m in sys.modules)]))
"""


def served_then_loaded(asked: list[tuple[str, dict[str, str]]], watched: list[str],
                       env: dict[str, str]) -> tuple[list[int], list[str]]:
    """Serves each (path, headers) GET through the production ASGI app in a fresh
    interpreter: the statuses, and which of the `watched` modules it then holds."""
    out = subprocess.run([_python(), "-c", _SERVE_THEN_LIST_MODULES, json.dumps([asked, watched])], cwd=ROOT,
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": "akaplatform.settings",
                              "DJANGO_ALLOWED_HOSTS": "127.0.0.1", **env})
    assert out.returncode == 0, out.stderr[-2000:]
    statuses, loaded = json.loads(out.stdout.strip().splitlines()[-1])
    return statuses, loaded
