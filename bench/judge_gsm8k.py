"""The heuristic judge, offline, on the weak model's recorded GSM8K answers.

    .venv/bin/python bench/judge_gsm8k.py [data dir, default ../shared/data/routellm] [threshold]

Prints the judge's recall of correct answers (correct answers it passes) and the share of
wrong answers it lets through, at the default threshold and across thresholds. The labels
are read only here, to measure: the judge never sees them. A cascade beats routing alone
on GSM8K only if the judge lets through at most about 38% of wrong answers at 90% recall
(issue 10)."""

import collections
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from apps.routing.classify import task_of  # noqa: E402
from apps.routing.heuristic import heuristic_score  # noqa: E402


def main() -> None:
    data = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT.parent.parent / "shared" / "data" / "routellm")
    rows = [json.loads(line) for line in (data / "gsm8k.jsonl").open()]
    scored = []
    for row in rows:
        score, reason = heuristic_score(prompt=row["prompt"], answer=row["weak_response"], finish_reason="stop",
                                        task=task_of(row["prompt"]))
        scored.append((score, reason, row["weak_correct"]))
    good = sum(1 for *_, ok in scored if ok)
    bad = len(scored) - good
    print(f"GSM8K weak answers: {len(scored)} ({good} correct, {bad} wrong)")
    print(f"{'threshold':>9} {'recall of correct':>18} {'wrong let through':>18}")
    for threshold in (0.1, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.75, 0.9):
        passed_good = sum(1 for s, _, ok in scored if ok and s >= threshold)
        passed_bad = sum(1 for s, _, ok in scored if not ok and s >= threshold)
        print(f"{threshold:>9.2f} {passed_good / good:>18.1%} {passed_bad / bad:>18.1%}")
    print("\nreasons (correct / wrong answers):")
    reasons = collections.defaultdict(lambda: [0, 0])
    for _, reason, ok in scored:
        reasons[reason.split(":")[0].split(";")[0]][0 if ok else 1] += 1
    for reason, (ok, wrong) in sorted(reasons.items(), key=lambda kv: -sum(kv[1])):
        print(f"  {reason:<40} {ok:>4} / {wrong:>4}")


if __name__ == "__main__":
    main()
