"""Placeholder until the researched rule lands: a static threshold on the nearest entry."""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Candidate:
    entry_id: int
    similarity: float
    embedding: np.ndarray
    neighbour_similarity: float | None


def decide(query: np.ndarray, candidates: list[Candidate], threshold: float) -> Candidate | None:
    best = max(candidates, key=lambda c: c.similarity, default=None)
    return best if best is not None and best.similarity >= threshold else None


def entry_statistic(embedding: np.ndarray, neighbour_similarities: list[float]) -> float | None:
    return max(neighbour_similarities, default=None)
