"""bench/verifier_study: would a verifier that also reads the embeddings reach issue 13's
target (at the default 1% target, at least 25% of test queries hit with at most 1.0% of
hits wrong, on Banking77 and HWU64)? Offline, no gateway, nothing shipped.

Each variant MODEL:PAIRS:PCA is trained on the pairs scripts/train_verifier.py mines (three
quarters of each training split, its candidates' nearest neighbours, same intent against
different intent) and calibrated, as that script does, on the remaining quarter of the
training split (target -> cut-off; the worst dataset's curve when trained on both). Only
then is it scored on the test splits, with the whole training split cached:

- MODEL: gb (scikit-learn GradientBoostingClassifier, the shipped model's settings), hgb
  (HistGradientBoostingClassifier) or lr (standardised logistic regression);
- PAIRS: the hand features of apps.cache.verifier alone (hand) or with pair features of
  the two embeddings joined by +: prod (q*c), diff (|q-c|), mean ((q+c)/2: where in the
  space the pair lies);
- PCA: 0 for the raw 384 dimensions, else the embeddings are first projected on that many
  principal components of the training texts.

Per variant, trained on each dataset and on both, tested on each (the off-diagonal rows are
the carry-over to a domain not trained on): hit rate and wrong-hit rate at targets 0.5, 1
and 2%, and the ceiling: the best hit rate at <= 1% wrong with the cut-off chosen on the
test split itself (never a headline figure; it shows how much a perfect calibration could
add). Exact repeats hit; contradictions (verifier.contradicts) are refused.

    .venv/bin/python bench/verifier_study.py                       # default variants
    .venv/bin/python bench/verifier_study.py hgb:prod+diff+mean:128 --seed 1
    .venv/bin/python bench/verifier_study.py --combined-only --cross-fit hgb:prod+diff+mean:128

Findings (seed 0, load 3-6 on 2 cores; full table in the commit message that added this):
no variant meets the target with the combined model (the only one the gateway can ship: it
does not know a tenant's domain). The embeddings raise the combined model's test-chosen
ceiling on HWU64 from 21.4% (hand features, the shipped model) to 22-29%, and the cut-off
the training split chooses lands on either side of the goal: hgb:prod+diff+mean:128 gives
at target 1% Banking77 33.7% / 0.96% and HWU64 19.3% / 0.96% (seed 1: 46.0% / 1.06% and
26.7% / 0.70%; seed 2: 34.2% / 0.95% and 18.7% / 1.00%; seed 0 with the first stage at
0.80: 44.5% / 1.02% and 27.5% / 0.68%): a hit or two either way, not a reliable pass.
Models trained on one dataset serve the other at 2.9-4.2% wrong at target 1%: neither the
learned ranking nor its calibration carries over to a domain it was not trained on.

Runs under PYTHONHASHSEED=0 (it re-executes itself): the hand features sum over sets of
words, and for hgb the last bits of those sums move its feature bins and splits enough to
shift the 1% row by several points between runs (gb gave the same figures under two hash
seeds). The row order moves it as much (gb's subsamples, hgb's early-stopping split): the
1% row sits on a steep part of a calibration curve measured on about 80 wrong hits.

--cross-fit calibrates on all four training quarters, each scored by the model fitted on
the other three, and scores the test splits with the mean of the four models. Combined,
hgb:prod+diff+mean:128 at target 1%, seeds 0 / 1 / 2: Banking77 35.5% / 0.55%, 0.6% / 5.56%,
39.4% / 0.99%; HWU64 19.8% / 0.47%, 0.3% / 0.00%, 22.3% / 0.42% (test-chosen ceilings on
HWU64 29.8%, 27.9%, 25.0%). Four times the calibration data does not steady it: the curve
(the worst dataset's wrong rate below each cut-off, made non-decreasing) is set by the few
wrong pairs with the lowest scores, and at seed 1 they close it almost entirely. What the
next attempt needs is a smoother calibration, not another model.
"""

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
if os.environ.get("PYTHONHASHSEED") != "0":
    sys.exit(subprocess.run([sys.executable, *sys.argv], env={**os.environ, "PYTHONHASHSEED": "0"}).returncode)

from apps.cache import verifier  # noqa: E402
from scripts import train_verifier as tv  # noqa: E402  (sets Django up)

TARGETS = (0.005, 0.01, 0.02)
GOAL_HITS, GOAL_WRONG = 0.25, 0.01
VARIANTS = ("gb:hand:0", "lr:prod+diff:0", "hgb:prod+diff:0", "hgb:prod+diff:64", "hgb:prod+diff+mean:128")


class Pair:
    """One query and the cached entry the first stage (or the mining) chose for it."""

    def __init__(self, queries, cache, qi: int, chosen, adjusted: float, pool: list) -> None:
        self.query, self.cached = queries.readings[qi], cache.readings[chosen.entry_id]
        self.cosine, self.adjusted, self.qi, self.dataset = chosen.similarity, adjusted, qi, queries.name
        self.around = verifier.neighbourhood(chosen, pool)
        self.wrong = int(cache.labels[chosen.entry_id] != queries.labels[qi])
        self.vectors = queries.vectors[qi], cache.vectors[chosen.entry_id]
        self.refused = verifier.contradicts(self.query, self.cached) is not None


def mine(queries, cache, own, floor: float, per_query: int) -> list[Pair]:
    """tv.mine's pairs (contradictions left out), keeping the two embeddings."""
    pairs = [Pair(queries, cache, qi, c, adj, pool) for qi, _, pool, ranked in tv.candidates(queries, cache, own)
             for c, adj in ranked[:per_query] if adj >= floor]
    return [p for p in pairs if not p.refused]


def test_outcomes(train, test, threshold: float) -> list:
    """Per test query: ("exact", wrong), None (the first stage misses) or the chosen Pair."""
    out = []
    for qi, exact, pool, ranked in tv.candidates(test, train, None):
        if exact is not None:
            out.append(("exact", int(train.labels[exact] != test.labels[qi])))
        else:
            c, adj = ranked[0]
            out.append(Pair(test, train, qi, c, adj, pool) if adj >= threshold else None)
    return out


class Features:
    """Hand features (verifier.features) followed by the chosen embedding pair features."""

    def __init__(self, kinds: str, pca: int, training_vectors: np.ndarray) -> None:
        self.kinds = [k for k in kinds.split("+") if k != "hand"]
        self.basis = None
        if pca:
            centred = training_vectors - training_vectors.mean(axis=0)
            self.basis = np.linalg.svd(centred, full_matrices=False)[2][:pca].T

    def __call__(self, pairs: list[Pair], lexicon) -> np.ndarray:
        hand = np.array([verifier.features(p.query, p.cached, p.cosine, p.adjusted, lexicon(p), p.around)
                         for p in pairs])
        if not self.kinds:
            return hand
        q, c = (np.array([p.vectors[side] for p in pairs]) for side in (0, 1))
        if self.basis is not None:
            q, c = q @ self.basis, c @ self.basis
        parts = {"prod": lambda: q * c, "diff": lambda: np.abs(q - c), "mean": lambda: (q + c) / 2}
        return np.hstack([hand, *(parts[k]() for k in self.kinds)])


def classifier(kind: str):
    """hgb or lr (gb is tv.fit: the shipped model's settings)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "hgb":
        return HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=40,
                                              l2_regularization=1.0, random_state=tv.SEED)
    if kind == "lr":
        return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=3000))
    raise ValueError(f"unknown model {kind!r}")


def lexicon(pairs: list[Pair]) -> dict[str, float]:
    return tv.lexicon([(p.query, p.cached, p.cosine, p.adjusted, p.wrong) for p in pairs])


def fit(folds: dict, names: list[str], variant: str):
    """A scorer (pairs -> wrong probability) and its calibration curve, from the named
    datasets' training folds only. The training rows' lexicon features are cross-fitted
    by query parity, as tv.fit_spec does."""
    score, calibrating = fitted(folds, names, variant)
    return score, tv.curve(score(calibrating), np.array([p.wrong for p in calibrating]),
                           np.array([p.dataset for p in calibrating]))


def cross_fit(rounds: list[dict], names: list[str], variant: str):
    """As `fit`, once per training quarter held out (`rounds`): every quarter's pairs are
    scored by the model that did not see them, and the curve is drawn over all of them,
    four times the calibration data of `fit`; the scorer is the mean of the four models."""
    fits = [fitted(folds, names, variant) for folds in rounds]
    scores = np.concatenate([score(calibrating) for score, calibrating in fits])
    calibrating = [p for _, pairs in fits for p in pairs]

    def score(pairs: list[Pair]) -> np.ndarray:
        return np.mean([one(pairs) for one, _ in fits], axis=0)

    return score, tv.curve(scores, np.array([p.wrong for p in calibrating]), np.array([p.dataset for p in calibrating]))


def fitted(folds: dict, names: list[str], variant: str):
    """The scorer fitted on the named datasets' "fit" pairs, and their "calibrate" pairs."""
    model_kind, kinds, pca = variant.split(":")
    # Half 0's rows, then half 1's: tv.fit_spec's order, so that gb:hand is the shipped model
    # (the order picks gb's random subsamples; another order moves the 1% row by points).
    fitting = sorted((p for n in names for p in folds[n]["fit"]), key=lambda p: p.qi % 2)
    features = Features(kinds, int(pca), np.concatenate([folds[n]["vectors"] for n in names]))
    by_half = [lexicon([p for p in fitting if p.qi % 2 != h]) for h in (0, 1)]
    x = features(fitting, lambda p: by_half[p.qi % 2])
    y = np.array([p.wrong for p in fitting])
    model = tv.fit(x, y) if model_kind == "gb" else classifier(model_kind).fit(x, y)
    full = lexicon(fitting)

    def score(pairs: list[Pair]) -> np.ndarray:
        probs = model.predict_proba(features(pairs, lambda p: full))[:, 1] if pairs else np.zeros(0)
        return np.where([p.refused for p in pairs], 1.0, probs)

    return score, [p for n in names for p in folds[n]["calibrate"]]


def rates(outcomes: list, probs: dict, cut: float) -> tuple[float, float]:
    hits = wrong = 0
    for i, o in enumerate(outcomes):
        if isinstance(o, tuple) or (o is not None and probs[i] < cut):
            hits += 1
            wrong += o[1] if isinstance(o, tuple) else o.wrong
    return hits / len(outcomes), wrong / max(hits, 1)


def ceiling(outcomes: list, probs: dict, target: float) -> float:
    """The best hit rate at <= target wrong over all cut-offs: chosen on the test split."""
    cuts = sorted(set(probs.values()))
    return max((h for h, w in (rates(outcomes, probs, c + 1e-12) for c in cuts) if w <= target), default=0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("variants", nargs="*", default=VARIANTS, help="MODEL:PAIRS:PCA, e.g. hgb:prod+diff+mean:128")
    parser.add_argument("--seed", type=int, default=tv.SEED, help="training folds and cache write order")
    parser.add_argument("--threshold", type=float, default=tv.FIRST_STAGE_THRESHOLD, help="the first stage's")
    parser.add_argument("--combined-only", action="store_true", help="train on both datasets only")
    parser.add_argument("--cross-fit", action="store_true",
                        help="calibrate on every training quarter, each by the model fitted on the other three")
    args = parser.parse_args()
    tv.SEED = args.seed
    data = {d.name: tv.load(d) for d in tv.DATASETS}
    rounds = [{} for _ in range(tv.FOLDS if args.cross_fit else 1)]
    tests = {}
    for name, (train, test) in data.items():
        chunks = np.array_split(np.random.default_rng(tv.SEED).permutation(len(train.texts)), tv.FOLDS)
        for k, folds in enumerate(rounds):
            rest, held = np.sort(np.concatenate(chunks[:k] + chunks[k + 1:])), np.sort(chunks[k])
            part = train.subset(rest)
            folds[name] = {"vectors": part.vectors,
                           "fit": mine(part, part, np.arange(len(rest)), tv.TRAIN_FLOOR, tv.PAIRS_PER_QUERY),
                           "calibrate": mine(train.subset(held), train, held, args.threshold, 1)}
        tests[name] = test_outcomes(train, test, args.threshold)
    names = list(data)
    trainings = ([] if args.combined_only else [(n, [n]) for n in names]) + [("both", names)]
    print(f"seed {tv.SEED}, first stage at {args.threshold}; cut-offs from the training splits' "
          f"{'four quarters, cross-fitted' if args.cross_fit else 'held-out quarter'}; "
          f"ceiling: cut-off chosen on the test split")
    print(f"{'variant':>24} {'trained':>9} {'tested':>9} | " + " | ".join(f"target {t:.1%}: hits  wrong" for t in TARGETS)
          + " | ceiling@1%")
    for variant in args.variants:
        for label, train_names in trainings:
            score, curve = (cross_fit(rounds, train_names, variant) if args.cross_fit
                            else fit(rounds[0], train_names, variant))
            for name in names:
                outcomes = tests[name]
                judged = [i for i, o in enumerate(outcomes) if isinstance(o, Pair)]
                probs = dict(zip(judged, score([outcomes[i] for i in judged]), strict=True))
                cells = [rates(outcomes, probs, verifier.cutoff(curve, t)) for t in TARGETS]
                goal = cells[1][0] >= GOAL_HITS and cells[1][1] <= GOAL_WRONG
                print(f"{variant:>24} {label:>9} {name:>9} | "
                      + " | ".join(f"{'':>12}{h:6.1%} {w:6.2%}" for h, w in cells)
                      + f" | {ceiling(outcomes, probs, GOAL_WRONG):6.1%}{'  goal met' if goal else ''}", flush=True)


if __name__ == "__main__":
    main()
