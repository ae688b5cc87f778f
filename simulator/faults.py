"""Faults on demand.

Three triggers, checked in this order for every generation/embedding request:

1. the request header ``x-sim-fault: <kind>``;
2. a marker in the last user message text: ``[[fault:<kind>]]``, optionally with
   ``model=<model-id>`` (fault only requests for that model) and ``times=<N>`` (fault only
   the first N requests seen for that exact (model, marker text), then answer normally);
3. faults armed with ``POST /_sim/faults {"model": "<id>|*", "kind": "<kind>", "times": N|null}``
   (cleared by ``DELETE /_sim/faults`` or ``POST /_sim/reset``); the first armed fault
   matching the model with remaining uses fires.

Kinds: an HTTP status 400–599 (the protocol's error body; 429 carries ``Retry-After: 1``),
``reset`` (the TCP connection is reset before any response byte), ``stall`` (nothing is
sent for 300 s, or until the client goes away), ``cut`` (about a third of the answer is
sent, then the connection is closed without completing the response), ``junk`` (a stream
opens with a data line that is not JSON, a proxy's error page, then goes on with the
answer; a whole answer is that page, with status 200) and ``late-junk`` (that line comes
just after the stream's first piece of text; a whole answer is the page).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MARKER_RE = re.compile(r"\[\[fault:([A-Za-z0-9_-]+)((?:\s+[A-Za-z_]+=[^\s\]]*)*)\s*\]\]")
OPTION_RE = re.compile(r"([A-Za-z_]+)=([^\s\]]*)")
JUNK_KINDS = frozenset({"junk", "late-junk"})
NAMED_KINDS = frozenset({"reset", "stall", "cut", *JUNK_KINDS})
STALL_SECONDS = 300.0
JUNK = b"<html>502 Bad Gateway</html>"   # what a proxy in front of a provider may answer in its place


def with_junk(events: list[tuple[bytes, int]], *, late: bool) -> list[tuple[bytes, int]]:
    """A stream's (bytes, tokens) events with a data line of JUNK before the first one, or
    (late) just after the first that carries tokens."""
    at = next((i + 1 for i, (_, tokens) in enumerate(events) if tokens), len(events)) if late else 0
    return [*events[:at], (b"data: " + JUNK + b"\n\n", 0), *events[at:]]


def valid_kind(kind: str) -> bool:
    if kind in NAMED_KINDS:
        return True
    return kind.isdigit() and 400 <= int(kind) <= 599


@dataclass(slots=True)
class Armed:
    model: str
    kind: str
    remaining: int | None  # None = forever

    def as_dict(self) -> dict:
        return {"model": self.model, "kind": self.kind, "times": self.remaining}


class FaultBook:
    def __init__(self) -> None:
        self.armed: list[Armed] = []
        self.seen: dict[tuple[str, str], int] = {}

    def reset(self) -> None:
        self.armed.clear()
        self.seen.clear()

    def arm(self, model: str, kind: str, times: int | None) -> Armed:
        armed = Armed(model=model, kind=kind, remaining=times)
        self.armed.append(armed)
        return armed

    def pick(self, model: str, header_kind: str | None, text: str) -> str | None:
        if header_kind and valid_kind(header_kind):
            return header_kind
        if "[[fault:" in text:
            kind = self._from_marker(model, text)
            if kind:
                return kind
        if self.armed:
            for armed in self.armed:
                if armed.model in ("*", model) and (armed.remaining is None or armed.remaining > 0):
                    if armed.remaining is not None:
                        armed.remaining -= 1
                    return armed.kind
        return None

    def _from_marker(self, model: str, text: str) -> str | None:
        for m in MARKER_RE.finditer(text):
            kind = m.group(1).lower()
            if not valid_kind(kind):
                continue
            options = dict(OPTION_RE.findall(m.group(2) or ""))
            only = options.get("model")
            if only and only != model:
                continue
            times = options.get("times")
            if times is not None and times.isdigit():
                key = (model, m.group(0))
                seen = self.seen.get(key, 0) + 1
                self.seen[key] = seen
                if seen > int(times):
                    continue
            return kind
        return None
