"""Fits the router's per-subject priors for multiple-choice questions and writes
apps/routing/data/priors.json: for each MMLU subject, the centroid of its questions'
embeddings (the cache's MiniLM, as the router sees a prompt) and the recorded share of
right answers of the cheap and the strong model (mixtral-8x7b-instruct,
gpt-4-1106-preview), on the training half of ../shared/data/routellm only
(bench/routing_split.py); bench/routing.py replays the other half.

    .venv/bin/python scripts/services.py run -- .venv/bin/python bench/routing_priors.py [DATA_DIR]

Rates are shrunk toward the whole training half's (as if each subject had SHRINK more
questions at the overall rates), so a subject with few questions does not swing routing.
"""

import json
import os
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "akaplatform.settings")

import django  # noqa: E402

django.setup()

from routing_split import in_training_half  # noqa: E402

from apps.cache.embedder import embedder  # noqa: E402
from apps.routing.predictor import SUBJECTS_PATH  # noqa: E402

SHRINK = 20


def main() -> None:
    data = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT.parent / "shared" / "data" / "routellm")
    rows = [json.loads(line) for line in (data / "mmlu.jsonl").open()]
    rows = [r for r in rows if in_training_half(r["id"])]
    model = embedder()
    vectors = np.vstack([model.embed([r["prompt"] for r in rows[i:i + 64]]) for i in range(0, len(rows), 64)])
    overall = (np.mean([r["weak_correct"] for r in rows]), np.mean([r["strong_correct"] for r in rows]))
    by_subject = defaultdict(list)
    for i, row in enumerate(rows):
        by_subject[row["subject"]].append(i)
    subjects = []
    for name, members in sorted(by_subject.items()):
        n = len(members)
        weak = sum(rows[i]["weak_correct"] for i in members)
        strong = sum(rows[i]["strong_correct"] for i in members)
        centroid = vectors[members].mean(0)
        subjects.append({"name": name, "questions": n,
                         "cheap": round((weak + SHRINK * overall[0]) / (n + SHRINK), 4),
                         "strong": round((strong + SHRINK * overall[1]) / (n + SHRINK), 4),
                         "centroid": (centroid / np.linalg.norm(centroid)).round(5).tolist()})
    SUBJECTS_PATH.parent.mkdir(exist_ok=True)
    SUBJECTS_PATH.write_text(json.dumps({
        "about": "per-subject P(right) of a cheap and a strong model on multiple-choice questions: "
                 f"bench/routing_priors.py on {len(rows)} MMLU questions (training half of ../shared/data/routellm, "
                 "mixtral-8x7b-instruct and gpt-4-1106-preview), centroids of their MiniLM embeddings",
        "subjects": subjects}) + "\n")
    print(f"{len(subjects)} subjects from {len(rows)} training questions -> {SUBJECTS_PATH}")


if __name__ == "__main__":
    main()
