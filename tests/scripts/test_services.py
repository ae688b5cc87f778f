"""scripts/services.py: what counts as a running process."""

import importlib.util
import os
import signal
import time

import pytest

from tests.live import ROOT

spec = importlib.util.spec_from_file_location("services_script", ROOT / "scripts" / "services.py")
services = importlib.util.module_from_spec(spec)
spec.loader.exec_module(services)


@pytest.fixture
def sleeper(tmp_path, monkeypatch):
    """A fake app process ("sleeper") whose pid file lives in a temporary run folder."""
    monkeypatch.setattr(services, "RUN", tmp_path / "run")
    monkeypatch.setattr(services, "LOG", tmp_path / "log")
    monkeypatch.setattr(services, "process_env", lambda: dict(os.environ))
    monkeypatch.setitem(services.APP_PROCESSES, "sleeper", lambda: ["sleep", "30"])
    yield "sleeper"
    services.stop(["sleeper"])


def _pid(name: str) -> int:
    return int(services._pidfile(name).read_text())


def test_start_after_kill_9_starts_the_process_again(sleeper):
    services.start([sleeper])
    first = _pid(sleeper)
    os.kill(first, signal.SIGKILL)
    time.sleep(0.2)  # dead but not reaped: this test process is its parent and has not waited
    assert not services.alive(sleeper)

    services.start([sleeper])

    second = _pid(sleeper)
    assert second != first
    assert services.alive(sleeper)


def test_a_live_process_counts_as_running(sleeper):
    services.start([sleeper])
    pid = _pid(sleeper)
    services.start([sleeper])  # a second start leaves it alone
    assert _pid(sleeper) == pid and services.alive(sleeper)
