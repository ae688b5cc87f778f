"""The ONNX export stores its weight matrices in 8 bits; the cache's thresholds, its
verifier and the routing priors were fitted on the float model's vectors, so the export
must give nearly the same vectors and, above all, nearly the same similarities."""

import csv
from pathlib import Path

import numpy as np

from apps.cache.embedder import OnnxEmbedder, TorchEmbedder

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def queries() -> list[str]:
    """Short and long queries from both intent datasets, near and far pairs among them."""
    texts = []
    for name in ("banking77", "hwu64"):
        with open(DATA / name / "test.csv", newline="") as f:
            texts += [row["text"] for row in csv.DictReader(f)][:60]
    return texts


def test_the_8_bit_export_keeps_the_float_models_vectors_and_similarities():
    texts = queries()
    exported, reference = OnnxEmbedder().embed(texts), TorchEmbedder().embed(texts)
    assert np.allclose(np.linalg.norm(exported, axis=1), 1.0, atol=1e-4)
    assert (exported * reference).sum(axis=1).min() > 0.998
    upper = np.triu_indices(len(texts), 1)
    moved = np.abs(exported @ exported.T - reference @ reference.T)[upper]
    # A threshold of 0.90 is crossed only by pairs that sat within this of it.
    assert moved.max() < 0.02 and np.median(moved) < 0.003
