"""Per-model request counters served at GET /_sim/stats.

requests   every generation/embedding request that named a model (faulted ones too)
completed  responses sent to the end (the whole JSON body, or a stream up to its final event)
cancelled  streams whose client went away before the end
faulted    requests answered with a fault (error status, reset, stall, cut)
"""

from __future__ import annotations

from collections import defaultdict


class Stats:
    def __init__(self) -> None:
        self.requests: defaultdict[str, int] = defaultdict(int)
        self.completed: defaultdict[str, int] = defaultdict(int)
        self.cancelled: defaultdict[str, int] = defaultdict(int)
        self.faulted: defaultdict[str, int] = defaultdict(int)

    def reset(self) -> None:
        for counter in (self.requests, self.completed, self.cancelled, self.faulted):
            counter.clear()

    def as_dict(self) -> dict:
        return {
            "requests": dict(self.requests),
            "completed": dict(self.completed),
            "cancelled": dict(self.cancelled),
            "faulted": dict(self.faulted),
        }
