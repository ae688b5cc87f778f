"""Helpers that start real processes for tests.

start_simulator() runs the upstream simulator (`python -m apps.providers.simulator`) as a
subprocess on a free loopback port and returns once GET /_sim/health answers 200.
"""

from __future__ import annotations

import os
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
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_simulator(fast: bool = True, timeout: float = 20.0) -> tuple[str, Callable[[], None]]:
    """Start the simulator; returns (base_url, stop). `stop()` is idempotent."""
    last_error: Exception | None = None
    for _attempt in range(3):  # a free port can be taken between probing and binding
        port = free_port()
        log = tempfile.TemporaryFile()
        cmd = [_python(), "-m", "apps.providers.simulator", "--host", "127.0.0.1", "--port", str(port)]
        if fast:
            cmd.append("--fast")
        env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        env.pop("AKA_SIMULATOR_FAST", None)
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        base_url = f"http://127.0.0.1:{port}"

        def stop(proc=proc, log=log) -> None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
            log.close()

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            try:
                if httpx.get(f"{base_url}/_sim/health", timeout=0.5).status_code == 200:
                    return base_url, stop
            except httpx.HTTPError as exc:
                last_error = exc
            time.sleep(0.05)
        log.seek(0)
        output = log.read().decode(errors="replace")
        stop()
        last_error = RuntimeError(f"simulator on port {port} did not start:\n{output[-4000:]}")
    raise RuntimeError(str(last_error))
