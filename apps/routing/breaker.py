"""A circuit breaker per model, fed by provider errors, consulted by the router.

In process, per worker: each worker learns a provider's failures from its own calls
(a few failed calls per worker before it stops routing there), which needs no shared
state on the hot path. After AKA_BREAKER_FAILURES consecutive failed attempts a model's
circuit opens for AKA_BREAKER_COOLDOWN seconds: routes skip it. Then it is half open:
one routed call may try it again (the probe); success closes it, another failure reopens
it. Routes filter their models with `is_open`, which only looks; the probe is taken by a
call's `Probes` as the call is about to be made (apps.providers.dispatch asks them), so a
model looked at but not called (the router routed elsewhere, a fallback was not needed)
leaves the probe to the call that tries it. An attempt cancelled before it answered or
failed (the race was decided, the client left) gives its probe back, and the next call
may probe at once. A probe that never reports otherwise goes to the next caller after
another cool-down, so that one unanswered probe cannot keep the circuit open for good.
"""

import time
from dataclasses import dataclass

from django.conf import settings


@dataclass
class Circuit:
    failures: int = 0
    opened_at: float | None = None
    probe_at: float | None = None   # when the half-open probe was taken


_circuits: dict[str, Circuit] = {}


def record(model_id: str, ok: bool) -> None:
    circuit = _circuits.get(model_id)
    if circuit is None:   # not setdefault: it would build a Circuit on every call to throw away
        circuit = _circuits[model_id] = Circuit()
    if ok:
        circuit.failures, circuit.opened_at, circuit.probe_at = 0, None, None
        return
    circuit.failures += 1
    circuit.probe_at = None
    if circuit.failures >= settings.AKA_BREAKER_FAILURES:
        circuit.opened_at = time.monotonic()


def _probe_out(circuit: Circuit, now: float) -> bool:
    """Another call holds the half-open probe (taken less than a cool-down ago)."""
    return circuit.probe_at is not None and now - circuit.probe_at < settings.AKA_BREAKER_COOLDOWN


def _cooling(circuit: Circuit, now: float) -> bool:
    return now - circuit.opened_at < settings.AKA_BREAKER_COOLDOWN


def is_open(model_id: str) -> bool:
    """Whether routes must skip the model now: cooling down, or half open with its probe
    out. Only looks: a model filtered here and not called leaves the probe where it was."""
    circuit = _circuits.get(model_id)
    if circuit is None or circuit.opened_at is None:
        return False
    now = time.monotonic()
    return _cooling(circuit, now) or _probe_out(circuit, now)


class Probes:
    """What one routed call's dispatch asks of the circuits: whether it may try a model,
    taking the half-open probe as it does; and the probes it took, by model and by when,
    so that an attempt ending without an outcome gives back its own probe and no other."""

    def __init__(self) -> None:
        self.taken: dict[str, float] = {}

    def take(self, model_id: str) -> bool:
        """Asked as the call is about to try the model: False while another call holds its
        half-open probe (the model is skipped); True otherwise, taking the probe when the
        circuit is half open. A circuit still cooling down does not refuse: routes have left
        such a model out already, unless every other was open too (services.decide_with)."""
        circuit = _circuits.get(model_id)
        if circuit is None or circuit.opened_at is None:
            return True
        now = time.monotonic()
        if _probe_out(circuit, now):
            return False
        if not _cooling(circuit, now):
            circuit.probe_at = self.taken[model_id] = now
        return True

    def give_back(self, model_id: str) -> None:
        """The attempt that took the model's probe ended with neither an answer nor an error:
        the probe is free for the next call. Only this call's probe, while still out: not once
        the circuit has closed or reopened, nor another call's probe taken since (never within
        a cool-down of this one, so the time a probe was taken names it)."""
        taken_at = self.taken.pop(model_id, None)
        circuit = _circuits.get(model_id)
        if taken_at is not None and circuit is not None and circuit.probe_at == taken_at:
            circuit.probe_at = None


def state(model_id: str) -> str:
    circuit = _circuits.get(model_id)
    if circuit is None or circuit.opened_at is None:
        return "closed"
    return "open" if _cooling(circuit, time.monotonic()) else "half_open"
