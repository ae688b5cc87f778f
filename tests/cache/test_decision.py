"""The hit decision rule (apps.cache.decision) on small synthetic neighbourhoods; no database.

Embeddings are built so that every pairwise cosine is known exactly: candidate i is
sqrt(p) * u + sqrt(1 - p) * e_i (u shared, e_i private, all orthonormal), so two such
candidates have cosine p; an "outlier" is a * u + sqrt(1 - a^2) * e_o.
"""

from dataclasses import replace

import numpy as np
import pytest

from apps.cache import decision, verifier
from apps.cache.decision import (
    BETA,
    COHERENCE_K,
    DENSE,
    MARGIN,
    RADIUS_K,
    Candidate,
    adjusted_similarities,
    decide,
    entry_statistic,
    update_statistic,
)

DIM = 384
QUERY = np.eye(DIM, dtype=np.float32)[DIM - 1]   # decide() relies on the store's similarities


def basis(i: int) -> np.ndarray:
    return np.eye(DIM, dtype=np.float32)[i]


def clustered(i: int, p: float) -> np.ndarray:
    """Cosine p with every other clustered(j, p), j != i."""
    return (np.sqrt(p) * basis(0) + np.sqrt(1 - p) * basis(i + 1)).astype(np.float32)


def outlier(cos_to_cluster: float, p: float) -> np.ndarray:
    """Cosine `cos_to_cluster` with every clustered(j, p)."""
    a = cos_to_cluster / np.sqrt(p)
    return (a * basis(0) + np.sqrt(1 - a * a) * basis(DIM - 2)).astype(np.float32)


def cand(entry_id, similarity, embedding, radius):
    return Candidate(entry_id=entry_id, similarity=similarity, embedding=embedding, neighbour_similarity=radius)


def adjusted(similarity, coherence, radius):
    return similarity + BETA * max(0.0, radius - DENSE) * (coherence - radius - MARGIN)


def test_empty_candidates_is_a_miss():
    assert decide(QUERY, [], 0.95) is None


def test_sparse_region_is_the_static_threshold():
    # radii at or below DENSE: the rule is cos >= threshold on the nearest entry, whatever the geometry
    cands = [cand(1, 0.93, clustered(1, 0.95), 0.40), cand(2, 0.91, clustered(2, 0.95), DENSE),
             cand(3, 0.90, clustered(3, 0.95), 0.50)]
    assert decide(QUERY, cands, 0.92).entry_id == 1
    assert decide(QUERY, cands, 0.93).entry_id == 1
    assert decide(QUERY, cands, 0.935) is None   # below threshold: miss


def test_below_threshold_is_a_miss_in_a_dense_region_too():
    # coherent dense neighbourhood, but every adjusted similarity is below the threshold
    cands = [cand(i, s, clustered(i, 0.8), 0.75) for i, s in enumerate((0.80, 0.79, 0.78, 0.77))]
    # coherence 0.8, agreement 0.05 < MARGIN: adjusted slightly below the raw similarity
    assert decide(QUERY, cands, 0.90) is None
    pool, adj = adjusted_similarities(cands)
    assert adj[0] == pytest.approx(adjusted(0.80, 0.8, 0.75))
    assert adj[0] < 0.80


def test_unordered_candidates_are_sorted_by_similarity():
    cands = [cand(2, 0.91, clustered(2, 0.95), 0.3), cand(1, 0.97, clustered(1, 0.95), 0.3),
             cand(3, 0.90, clustered(3, 0.95), 0.3)]
    assert decide(QUERY, cands, 0.95).entry_id == 1


def test_too_few_candidates_fall_back_to_the_static_rule():
    # two candidates: no neighbourhood to judge, even with a dense radius and a scattered geometry
    cands = [cand(1, 0.96, basis(1), 0.9), cand(2, 0.50, basis(2), 0.9)]
    assert len(cands) < decision.MIN_CANDIDATES
    assert decide(QUERY, cands, 0.95).entry_id == 1
    assert decide(QUERY, cands, 0.97) is None


def test_rejects_a_close_entry_whose_neighbourhood_disagrees():
    """The rule's rejection case: the nearest entry sits in a dense region (radius 0.85) but the
    query's other neighbours are far from it (cosine 0.3): the query grazes it from elsewhere."""
    p = 0.9
    nearest = cand(1, 0.97, outlier(0.3, p), 0.85)
    others = [cand(i, s, clustered(i, p), 0.55) for i, s in ((2, 0.70), (3, 0.69), (4, 0.68))]
    cands = [nearest, *others]
    assert decide(QUERY, cands, 0.95) is None          # the static rule would serve entry 1
    _, adj = adjusted_similarities(cands)
    assert adj[0] == pytest.approx(adjusted(0.97, 0.3, 0.85))
    assert adj[0] < 0.5
    # the others are in a sparse region (radius 0.55): judged on raw similarity
    assert list(adj[1:]) == pytest.approx([0.70, 0.69, 0.68])


def test_accepts_an_entry_below_threshold_when_its_dense_neighbourhood_agrees():
    # radius 0.7, coherence 0.95: agreement 0.25 > MARGIN raises 0.88 to 0.88 + 5 * 0.1 * 0.125
    cands = [cand(i, s, clustered(i, 0.95), 0.7) for i, s in enumerate((0.88, 0.87, 0.86, 0.85))]
    chosen = decide(QUERY, cands, 0.90)
    assert chosen is not None and chosen.entry_id == 0
    _, adj = adjusted_similarities(cands)
    assert adj[0] == pytest.approx(0.88 + 5 * 0.1 * 0.125)
    assert decide(QUERY, cands, 0.95) is None   # a stricter setting still says no


def test_serves_a_lower_candidate_whose_neighbourhood_agrees_over_the_nearest_that_does_not():
    p = 0.95
    nearest = cand(10, 0.95, outlier(0.5, p), 0.85)            # coherence 0.5, far below its radius
    cluster = [cand(i, s, clustered(i, p), 0.70) for i, s in ((11, 0.92), (12, 0.91), (13, 0.90), (14, 0.89))]
    cands = [nearest, *cluster]
    chosen = decide(QUERY, cands, 0.90)
    assert chosen is not None and chosen.entry_id == 11
    _, adj = adjusted_similarities(cands)
    assert adj[0] == pytest.approx(adjusted(0.95, 0.5, 0.85))
    assert adj[1] == pytest.approx(adjusted(0.92, (0.5 + 3 * p) / 4, 0.70))
    assert decide(QUERY, cands, adj[1] + 1e-6) is None


def test_ranked_gives_the_best_few_by_adjusted_similarity_that_reach_the_threshold():
    """What the verifier chooses from (verifier.CANDIDATES of them): the same order as the
    rule's own choice, the nearest outlier ranked below the agreeing cluster."""
    p = 0.95
    nearest = cand(10, 0.95, outlier(0.5, p), 0.85)
    cluster = [cand(i, s, clustered(i, p), 0.70) for i, s in ((11, 0.92), (12, 0.91), (13, 0.90), (14, 0.89))]
    cands = [*cluster, nearest]
    _, adj = adjusted_similarities(sorted(cands, key=lambda c: -c.similarity))
    ranks = decision.ranked(cands, 0.0, 3)
    assert [c.entry_id for c, _ in ranks] == [11, 12, 13]
    assert [a for _, a in ranks] == pytest.approx(sorted(adj, reverse=True)[:3])
    assert [c.entry_id for c, _ in decision.ranked(cands, adj[2] - 1e-6, 3)] == [11, 12]   # the third falls short
    assert decision.ranked(cands, 2.0, 3) == [] and decision.ranked([], 0.0, 3) == []
    two = cands[:2]   # too few for a neighbourhood: the static rule, on the nearest alone
    assert [(c.entry_id, a) for c, a in decision.ranked(two, 0.5, 3)] == [(11, 0.92)]
    assert decision.ranked(two, 0.93, 3) == []


def test_a_candidate_without_radius_is_judged_by_raw_similarity():
    p = 0.9
    nearest = cand(1, 0.96, outlier(0.3, p), None)   # written into an empty partition
    others = [cand(i, s, clustered(i, p), 0.8) for i, s in ((2, 0.7), (3, 0.69), (4, 0.68))]
    assert decide(QUERY, [nearest, *others], 0.95).entry_id == 1


def test_only_the_ten_nearest_candidates_count():
    near = [cand(i, 0.99 - i * 0.001, clustered(i, 0.95), 0.3) for i in range(10)]
    far = [cand(100 + i, 0.5, basis(200 + i), 0.99) for i in range(10)]
    pool, _ = adjusted_similarities(far + near)
    assert [c.entry_id for c in pool] == list(range(10))


def test_no_embedding_beyond_the_ten_nearest_is_read_by_the_rule_or_the_verifier():
    """The store sends the ten nearest candidates' vectors alone (store.SEMANTIC)."""
    rng = np.random.default_rng(11)
    for _ in range(100):
        vecs = rng.normal(size=(20, DIM)).astype(np.float32) + 2 * basis(0)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        sims = rng.uniform(0.8, 1.0, size=20)
        cands = [cand(i, float(sims[i]), vecs[i], float(rng.uniform(0.6, 0.95))) for i in range(20)]
        nearest = set(np.argsort(-sims)[:COHERENCE_K])
        trimmed = [c if c.entry_id in nearest else replace(c, embedding=None) for c in cands]
        (full,), (cut,) = decision.ranked(cands, -10.0), decision.ranked(trimmed, -10.0)   # always a choice
        assert (full[0].entry_id, full[1]) == (cut[0].entry_id, cut[1])
        assert verifier.neighbourhood(full[0], cands) == verifier.neighbourhood(cut[0], trimmed)


def test_a_higher_threshold_is_never_less_strict():
    rng = np.random.default_rng(7)
    for _ in range(200):
        n = int(rng.integers(0, 12))
        vecs = rng.normal(size=(n, DIM)).astype(np.float32) + 3 * basis(0)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        cands = [cand(i, float(rng.uniform(0.7, 1.0)), vecs[i], None if rng.random() < 0.1 else float(rng.uniform(0.3, 0.95)))
                 for i in range(n)]
        hits = [decide(QUERY, cands, t) is not None for t in (0.80, 0.85, 0.90, 0.95, 0.99)]
        assert hits == sorted(hits, reverse=True)


def test_entry_statistic_is_the_twentieth_nearest_similarity():
    sims = [1 - i / 100 for i in range(25)]
    assert entry_statistic(basis(1), sims) == pytest.approx(sims[RADIUS_K - 1])
    assert entry_statistic(basis(1), list(reversed(sims))) == pytest.approx(sims[RADIUS_K - 1])
    assert entry_statistic(basis(1), [0.9, 0.4, 0.7]) == pytest.approx(0.4)   # fewer: the farthest
    assert entry_statistic(basis(1), []) is None


def test_update_statistic_moves_the_radius_towards_a_closer_newcomer():
    assert update_statistic(0.70, 0.90) == pytest.approx(0.70 + (0.90 - 0.70) / RADIUS_K)
    assert update_statistic(0.70, 0.65) == 0.70    # outside the radius: unchanged
    assert update_statistic(0.70, 0.70) == 0.70
    assert update_statistic(None, 0.90) is None
