"""A circuit breaker per model, fed by provider errors, consulted by the router.

In process, per worker: each worker learns a provider's failures from its own calls
(a few failed calls per worker before it stops routing there), which needs no shared
state on the hot path. After AKA_BREAKER_FAILURES consecutive failed attempts a model's
circuit opens for AKA_BREAKER_COOLDOWN seconds: routes skip it. Then it is half open:
one routed call may try it again; success closes it, another failure reopens it. A probe
that never reports (the router asked about the model, then routed elsewhere; the call was
cancelled) goes to the next caller after another cool-down, so that one unanswered probe
cannot keep the circuit open for good.
"""

import time
from dataclasses import dataclass

from django.conf import settings


@dataclass
class Circuit:
    failures: int = 0
    opened_at: float | None = None
    probe_at: float | None = None   # when the half-open probe was handed out


_circuits: dict[str, Circuit] = {}


def record(model_id: str, ok: bool) -> None:
    circuit = _circuits.setdefault(model_id, Circuit())
    if ok:
        circuit.failures, circuit.opened_at, circuit.probe_at = 0, None, None
        return
    circuit.failures += 1
    circuit.probe_at = None
    if circuit.failures >= settings.AKA_BREAKER_FAILURES:
        circuit.opened_at = time.monotonic()


def is_open(model_id: str) -> bool:
    """Whether routes must skip the model now. Past the cool-down one caller gets the
    half-open probe (False); the others keep skipping until it reports, or until a cool-down
    has passed since without a report."""
    circuit = _circuits.get(model_id)
    if circuit is None or circuit.opened_at is None:
        return False
    now = time.monotonic()
    cooldown = settings.AKA_BREAKER_COOLDOWN
    if now - circuit.opened_at < cooldown or (circuit.probe_at is not None and now - circuit.probe_at < cooldown):
        return True
    circuit.probe_at = now
    return False


def state(model_id: str) -> str:
    circuit = _circuits.get(model_id)
    if circuit is None or circuit.opened_at is None:
        return "closed"
    return "half_open" if time.monotonic() - circuit.opened_at >= settings.AKA_BREAKER_COOLDOWN else "open"
