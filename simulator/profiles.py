"""Model profiles of the simulator, read from the platform's model catalog.

Every model in `apps/providers/data/catalog.json` is served on every protocol; its `sim`
entry gives the latency profile: `ttft_ms` (time to first token) and `tokens_per_s`
(0 = no pacing), plus `dimensions` for embedding models (default 1536).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import orjson

# Read as a file, not imported: the simulator serves the platform's models without depending on its code.
DEFAULT_CATALOG = Path(__file__).resolve().parent.parent / "apps" / "providers" / "data" / "catalog.json"
DEFAULT_DIMENSIONS = 1536
CREATED = 1_735_689_600  # 2025-01-01, reported as the models' creation time


@dataclass(frozen=True, slots=True)
class Profile:
    id: str
    provider: str
    ttft_ms: float
    tokens_per_s: float
    dimensions: int


def load_profiles(path: str | os.PathLike | None = None) -> dict[str, Profile]:
    raw = orjson.loads(Path(path or DEFAULT_CATALOG).read_bytes())
    profiles: dict[str, Profile] = {}
    for entry in raw.get("models", []):
        sim = entry.get("sim") or {}
        profiles[entry["id"]] = Profile(
            id=entry["id"],
            provider=entry.get("provider", "openai"),
            ttft_ms=float(sim.get("ttft_ms", 0) or 0),
            tokens_per_s=float(sim.get("tokens_per_s", 0) or 0),
            dimensions=int(sim.get("dimensions") or DEFAULT_DIMENSIONS),
        )
    return profiles
