"""The model catalog as the hot path sees it: an immutable in-process snapshot, reloaded
from the database every AKA_CATALOG_TTL seconds so admin edits reach every process."""

import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from django.conf import settings

from apps.core.llm import Usage
from apps.core.snapshots import Snapshots

from .models import CatalogModel

SEED_FILE = Path(__file__).parent / "data" / "catalog.json"


@dataclass(frozen=True, slots=True)
class ModelInfo:
    id: str
    provider: str
    upstream_id: str
    family: str
    tier: str
    input_per_mtok: Decimal
    output_per_mtok: Decimal
    context_window: int
    max_output_tokens: int
    capabilities: frozenset
    fallbacks: tuple

    def cost_micros(self, usage: Usage) -> Decimal:
        """Provider cost in micro-dollars: USD per 1M tokens is micro-dollars per token."""
        return usage.prompt_tokens * self.input_per_mtok + usage.completion_tokens * self.output_per_mtok

    def supports(self, capability: str) -> bool:
        return capability in self.capabilities


def _load(_key=None) -> dict[str, ModelInfo]:
    return {
        m.model_id: ModelInfo(
            id=m.model_id,
            provider=m.provider,
            upstream_id=m.upstream_id or m.model_id,
            family=m.family,
            tier=m.tier,
            input_per_mtok=m.input_per_mtok,
            output_per_mtok=m.output_per_mtok,
            context_window=m.context_window,
            max_output_tokens=m.max_output_tokens,
            capabilities=frozenset(m.capabilities),
            fallbacks=tuple(m.fallbacks),
        )
        for m in CatalogModel.objects.filter(enabled=True)
    }


# One entry (the whole catalog), re-read at most every AKA_CATALOG_TTL seconds, once for
# all the calls that find it stale together.
_catalog = Snapshots(_load, lambda: settings.AKA_CATALOG_TTL)


async def amodels() -> dict[str, ModelInfo]:
    return await _catalog.aget(None)


def seed_rows() -> list[dict]:
    return json.loads(SEED_FILE.read_text())["models"]


def sync_from_seed(model=CatalogModel) -> int:
    """Creates or updates every model of the seed file (the admin may edit them later)."""
    for row in seed_rows():
        model.objects.update_or_create(
            model_id=row["id"],
            defaults={
                "provider": row["provider"],
                "family": row["family"],
                "tier": row["tier"],
                "input_per_mtok": Decimal(str(row["input_per_mtok"])),
                "output_per_mtok": Decimal(str(row["output_per_mtok"])),
                "context_window": row["context_window"],
                "max_output_tokens": row["max_output_tokens"],
                "capabilities": row["capabilities"],
                "fallbacks": row["fallbacks"],
            },
        )
    return len(seed_rows())
