"""Start the real gateway (uvicorn serving akaplatform.asgi) for live tests and benches."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import httpx
from django.conf import settings

from tests.live import ROOT, _python, free_port


def start_gateway(*, simulator_url: str, database_name: str | None = None, redis_url: str | None = None,
                  extra_env: dict | None = None, workers: int = 1, timeout: float = 30.0
                  ) -> tuple[str, Callable[[], None]]:
    db = settings.DATABASES["default"] if settings.configured else {}
    env = {**os.environ, "AKA_SIMULATOR_URL": simulator_url, "PYTHONUNBUFFERED": "1"}
    if database_name:
        env["DATABASE_URL"] = f"postgresql://{db.get('USER') or 'postgres'}@{quote(db['HOST'], safe='')}/{database_name}"
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.update(extra_env or {})
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="gateway-", suffix=".log", delete=False)
    proc = subprocess.Popen(
        [_python(), "-m", "uvicorn", "akaplatform.asgi:application", "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(workers), "--no-access-log", "--loop", "uvloop", "--http", "httptools"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def stop() -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return url, stop
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    stop()
    raise RuntimeError(f"gateway did not start; log in {log.name}:\n{Path(log.name).read_text()[-3000:]}")
