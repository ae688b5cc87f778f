"""Requests arriving together, in tests: actions in their own threads, each held at the same
step until all have reached it."""

import threading

from django.db import connection


def together(monkeypatch, owner, name: str, *actions, timeout: float = 15) -> list[Exception]:
    """Runs each action in its own thread (own database connection), holding each one just
    after its call of `owner.name` returns until all have made that call, as requests
    arriving together would; returns what the actions raised. An action blocked on a lock
    (or refused before the call) breaks the hold after 5 s and the others go on."""
    barrier = threading.Barrier(len(actions), timeout=5)
    real = getattr(owner, name)

    def then_wait(*args, **kwargs):
        result = real(*args, **kwargs)
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass
        return result

    monkeypatch.setattr(owner, name, then_wait)
    errors = []

    def run(action):
        try:
            action()
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(action,)) for action in actions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    return errors
