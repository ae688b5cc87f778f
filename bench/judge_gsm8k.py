"""The heuristic judge (with its learned math part), offline, on the weak model's recorded
GSM8K answers.

    .venv/bin/python bench/judge_gsm8k.py [data dir, default ../shared/data/routellm] [--train]

--train fits the learned math judge (a logistic regression over
apps.routing.heuristic.math_features, L2-regularised, Newton's method in numpy) on the
training half of the prompts (bench/routing_split.py) and writes
apps/routing/data/math_judge.json. Every figure printed is on the other, held-out half:
the judge's recall of correct answers (correct answers it passes) and the share of wrong
answers it lets through, across thresholds and at 90% recall. The labels are read only
here: the judge never sees them. A cascade beats routing alone on GSM8K only if the judge
lets through at most about 38% of wrong answers at 90% recall (issue 10)."""

import collections
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from routing_split import in_training_half  # noqa: E402

from apps.routing import heuristic  # noqa: E402
from apps.routing.classify import task_of  # noqa: E402

L2 = 1.0   # on standardised features: keeps 18 weights fitted on ~450 answers from chasing noise


def fit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Logistic regression by Newton's method (a few iterations converge)."""
    design = np.hstack([np.ones((len(x), 1)), x])
    w = np.zeros(design.shape[1])
    penalty = np.eye(len(w)) * L2
    penalty[0, 0] = 0.0
    for _ in range(25):
        p = 1 / (1 + np.exp(-design @ w))
        gradient = design.T @ (p - y) + penalty @ w
        hessian = design.T @ (design * (p * (1 - p))[:, None]) + penalty
        w -= np.linalg.solve(hessian, gradient)
    return w[1:], float(w[0])


def train(rows: list[dict]) -> None:
    names = list(heuristic.math_features("1", "1"))
    x = np.array([[heuristic.math_features(r["prompt"], r["weak_response"].strip())[n] for n in names] for r in rows])
    y = np.array([float(r["weak_correct"]) for r in rows])
    mean, scale = x.mean(0), np.where(x.std(0) > 1e-6, x.std(0), 1.0)   # a constant feature stays 0
    weights, intercept = fit((x - mean) / scale, y)
    fitted = 1 / (1 + np.exp(-(((x - mean) / scale) @ weights + intercept)))
    # What a pass at each threshold shows (the router weighs a verdict by it), on the
    # answers it was fitted on: (threshold, recall of right answers, wrong ones let through).
    sight = [[t, round(float((fitted[y == 1] >= t).mean()), 4), round(float((fitted[y == 0] >= t).mean()), 4)]
             for t in np.round(np.arange(0.0, 1.0001, 0.05), 2).tolist()]
    heuristic.MATH_MODEL_PATH.parent.mkdir(exist_ok=True)
    heuristic.MATH_MODEL_PATH.write_text(json.dumps({
        "about": "P(a math answer is right): logistic regression over apps.routing.heuristic.math_features, "
                 f"fitted by bench/judge_gsm8k.py --train on {len(rows)} GSM8K answers of mixtral-8x7b-instruct "
                 "(the training half of ../shared/data/routellm, bench/routing_split.py)",
        "features": names, "mean": mean.round(6).tolist(), "scale": scale.round(6).tolist(),
        "weights": weights.round(6).tolist(), "intercept": round(intercept, 6), "sight": sight}, indent=1) + "\n")
    heuristic.math_model.cache_clear()
    print(f"fitted on {len(rows)} training answers ({int(y.sum())} correct) -> {heuristic.MATH_MODEL_PATH}")


def wrong_passed_at_recall(scored: list[tuple[float, str, bool]], recall: float) -> tuple[float, float]:
    """(the threshold keeping `recall` of the correct answers, the share of wrong ones it passes)."""
    good = sorted(s for s, _, ok in scored if ok)
    threshold = good[int(len(good) * (1 - recall))]
    wrong = [s for s, _, ok in scored if not ok]
    return threshold, sum(s >= threshold for s in wrong) / len(wrong)


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    data = Path(args[0] if args else ROOT.parent / "shared" / "data" / "routellm")
    rows = [json.loads(line) for line in (data / "gsm8k.jsonl").open()]
    if "--train" in sys.argv:
        train([r for r in rows if in_training_half(r["id"])])
    held_out = [r for r in rows if not in_training_half(r["id"])]
    scored = []
    for row in held_out:
        score, reason = heuristic.heuristic_score(prompt=row["prompt"], answer=row["weak_response"],
                                                  finish_reason="stop", task=task_of(row["prompt"]))
        scored.append((score, reason, row["weak_correct"]))
    good = sum(1 for *_, ok in scored if ok)
    bad = len(scored) - good
    print(f"GSM8K weak answers, held-out half: {len(scored)} ({good} correct, {bad} wrong)")
    print(f"{'threshold':>9} {'recall of correct':>18} {'wrong let through':>18}")
    for threshold in (0.1, 0.2, 0.3, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.9):
        passed_good = sum(1 for s, _, ok in scored if ok and s >= threshold)
        passed_bad = sum(1 for s, _, ok in scored if not ok and s >= threshold)
        print(f"{threshold:>9.2f} {passed_good / good:>18.1%} {passed_bad / bad:>18.1%}")
    for recall in (0.95, 0.9, 0.8):
        threshold, wrong = wrong_passed_at_recall(scored, recall)
        print(f"at {recall:.0%} recall (threshold {threshold:.3f}): {wrong:.1%} of wrong answers let through "
              f"(issue 10: <= ~38% at 90% recall)")
    print("\nreasons (correct / wrong answers):")
    reasons = collections.defaultdict(lambda: [0, 0])
    for _, reason, ok in scored:
        reasons[reason.split(":")[0].split(";")[0]][0 if ok else 1] += 1
    for reason, (ok, wrong) in sorted(reasons.items(), key=lambda kv: -sum(kv[1])):
        print(f"  {reason:<40} {ok:>4} / {wrong:>4}")


if __name__ == "__main__":
    main()
