"""The semantic cache's hit decision: *neighbourhood agreement*, not a bare cosine threshold.

A static threshold on the nearest entry's cosine similarity treats every region of the
embedding space alike. It is not: where many cached questions crowd together (several
intents phrased with the same words), a similarity of 0.95 is common between questions that
need different answers. The rule asks, only in such crowded regions, one more cheap question:
do the query's other neighbours lie inside the entry's own neighbourhood?

Per entry ``e`` the store keeps one float, its radius ``r_e``: the cosine similarity between
``e`` and its ``RADIUS_K``-th (20th) nearest other entry. It is computed when the entry is
written, from the similarities the missed lookup already returned (``entry_statistic``), and
nudged upwards when later entries land inside it (``update_statistic``).

At lookup, for the query ``q`` and its nearest candidates ``c_1..c_n`` (the top
``COHERENCE_K`` = 10 of what the store returned), each candidate gets

    agreement_i = mean_{j != i} cos(c_i, c_j) - r_i
    adjusted_i  = cos(q, c_i) + BETA * max(0, r_i - DENSE) * (agreement_i - MARGIN)

and the candidate with the highest adjusted similarity is served when it reaches the tenant's
``threshold`` (so a higher threshold is still stricter, and in a sparse region, where
``r_i <= DENSE``, the rule *is* the static threshold ``cos(q, c) >= threshold``); with the
second stage on, the best few that reach it go to the verifier, which serves the one least
likely to be wrong (``ranked``, apps.cache.verifier.choose). In a dense
region the entry's similarity is lowered when the query's neighbours are scattered outside
the entry's neighbourhood (the query grazes the entry from another cluster) and raised when
they sit well inside it; the denser the region, the more weight this evidence gets. A lower
candidate can win when its neighbourhood agrees better than the nearest one's.

Calibration: in dense caches the rule is stricter than the static rule at the same threshold,
so the same false-hit rate is reached at a lower setting; in sparse ones it is the static rule.
On Banking77 (cache of the 10,003 training queries, 3,080 test queries) threshold 0.90 serves
41% of queries with 1.9% of the hits wrong, where the static rule serves 17% at 2.2% wrong
(0.97); most remaining wrong hits are label noise. Hence RECOMMENDED_THRESHOLD = 0.90 (in a
sparse cache that is the static rule at 0.90). The parameters were tuned on the training split
only, at cache sizes 200 to 8,000, for the best hit rate at 1.5-3% wrong with no size clearly
worse than the static rule. bench/cache_quality_offline.py prints the tables.

Requirements on the store: the lookup returns at least RADIUS_K = 20 candidates with their
radii, and the COHERENCE_K nearest with their embeddings (settings.AKA_CACHE_CANDIDATES >= 20;
no other embedding is read, here or by the verifier); on insert, the new entry's radius is
saved and its neighbours' radii are updated (``update_statistic``). Without the updates the radii
go stale as the cache grows and most of the gain is lost.

Fallbacks: a candidate without a radius (None: written into an empty partition, or before this
rule) and a lookup with fewer than ``MIN_CANDIDATES`` candidates are judged by the static rule.
The rule uses no labels: only embeddings, similarities and the stored radius. Cost: one 10x10
Gram matrix, well under 0.1 ms.
"""

from dataclasses import dataclass

import numpy as np

RADIUS_K = 20        # an entry's radius: its similarity to its 20th nearest neighbour
COHERENCE_K = 10     # agreement is measured among the query's 10 nearest candidates
DENSE = 0.60         # radii above this mark a dense region, where the rule departs from static
BETA = 5.0           # weight of the agreement per unit of density above DENSE
MARGIN = 0.125       # agreement above this raises the similarity, below it lowers it
MIN_CANDIDATES = 3   # below this many candidates there is no neighbourhood to judge
UPDATE_RATE = 1.0 / RADIUS_K
RECOMMENDED_THRESHOLD = 0.90   # see the module docstring and bench/cache_quality_offline.py
RECOMMENDED_CANDIDATES = RADIUS_K   # settings.AKA_CACHE_CANDIDATES


@dataclass(frozen=True)
class Candidate:
    entry_id: int
    similarity: float                   # cosine similarity to the query
    embedding: np.ndarray | None        # the entry's normalized embedding (384,); read for the 10 nearest only
    neighbour_similarity: float | None  # the entry's radius r_e (entry_statistic / update_statistic)


def adjusted_similarities(candidates: list[Candidate]) -> tuple[list[Candidate], np.ndarray | None]:
    """The candidates the rule considers (nearest first, at most COHERENCE_K) and their
    adjusted similarities; None when there are too few candidates to judge a neighbourhood."""
    pool = sorted(candidates, key=lambda c: c.similarity, reverse=True)[:COHERENCE_K]
    n = len(pool)
    if n < MIN_CANDIDATES:
        return pool, None
    sims = np.fromiter((c.similarity for c in pool), dtype=np.float64, count=n)
    radii = np.fromiter((np.nan if c.neighbour_similarity is None else c.neighbour_similarity for c in pool),
                        dtype=np.float64, count=n)
    dense = np.nan_to_num(radii - DENSE, nan=0.0).clip(min=0.0)   # no radius: judged as sparse
    if not dense.any():
        return pool, sims
    emb = np.stack([c.embedding for c in pool]).astype(np.float32, copy=False)
    gram = emb @ emb.T
    coherence = (gram.sum(axis=1) - np.diagonal(gram)) / (n - 1)
    agreement = coherence - np.nan_to_num(radii)
    return pool, sims + BETA * dense * (agreement - MARGIN)


def ranked(candidates: list[Candidate], threshold: float, n: int = 1) -> list[tuple[Candidate, float]]:
    """The first stage's choices for a query: up to `n` entries whose adjusted similarity
    reaches `threshold` (the tenant's setting, 0.80-0.999), best first, each with its
    adjusted similarity; empty for a miss.

    `candidates` are the nearest cache entries (any order; the store returns up to
    AKA_CACHE_CANDIDATES of them). With too few of them to judge a neighbourhood, the
    static rule on the nearest alone: the verifier has no neighbourhood to place the others
    in, and was never calibrated on such sparse contexts. The second stage
    (apps.cache.verifier) serves the one of these least likely to be wrong, or none.
    """
    if not candidates:
        return []
    pool, adjusted = adjusted_similarities(candidates)
    if adjusted is None:
        pool, adjusted = pool[:1], np.array([pool[0].similarity])
    order = np.argsort(-adjusted, kind="stable")[:n]
    return [(pool[i], float(adjusted[i])) for i in order if adjusted[i] >= threshold]


def decide(query: np.ndarray, candidates: list[Candidate], threshold: float) -> Candidate | None:
    """The entry the first stage alone would serve for `query` (ranked()'s best), or None
    (a miss). `query` is not needed beyond the similarities the store computed; it is part
    of the interface."""
    best = ranked(candidates, threshold)
    return best[0][0] if best else None


def entry_statistic(embedding: np.ndarray, neighbour_similarities: list[float]) -> float | None:
    """The new entry's radius, from the similarities of its nearest existing entries (the
    candidates of the lookup that missed): the RADIUS_K-th largest; the smallest when fewer
    were returned (a sparse neighbourhood: low, so the entry is judged by the static rule
    until update_statistic raises it). None without any neighbour. `embedding` is unused."""
    if not neighbour_similarities:
        return None
    ordered = sorted(neighbour_similarities, reverse=True)
    return float(ordered[min(RADIUS_K, len(ordered)) - 1])


def update_statistic(radius: float | None, similarity_to_new_entry: float) -> float | None:
    """An existing entry's radius after a new entry was written at `similarity_to_new_entry`
    from it. Apply it to each of the new entry's nearest neighbours (the candidates of the
    lookup that missed), e.g. in SQL:

        UPDATE entries SET neighbour_stat = neighbour_stat + (%(sim)s - neighbour_stat) / 20
         WHERE id = %(neighbour)s AND neighbour_stat < %(sim)s

    A neighbour closer than the radius pushes the 20th-nearest similarity up; this moves the
    radius 1/RADIUS_K of the way towards it (exact would need the entry's 20 similarities).
    Without these updates the radii go stale as the cache grows and the rule loses most of
    its gain. Entries with no radius (None) keep None.
    """
    if radius is None or similarity_to_new_entry <= radius:
        return radius
    return float(radius + UPDATE_RATE * (similarity_to_new_entry - radius))
