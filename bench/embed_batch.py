"""bench/embed_batch: what the embedder's batch size costs in time per text and in a
worker's memory, to choose EmbeddingBatcher.MAX_BATCH.

A batch is padded to its longest text, and ONNX Runtime's arena keeps the largest
buffers it ever needed: bigger batches waste work on padding and leave the worker holding
more memory for good. Each batch size runs in a process of its own (the arena only
grows), embedding the same BENCH_TEXTS (default 512) Banking77 training queries in
order, after one single-text warm-up.

Run: scripts/services.py run -- python bench/embed_batch.py [sizes, default 1,4,8,16,32,64]
"""

import csv
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "banking77" / "train.csv"
TEXTS = int(os.environ.get("BENCH_TEXTS", "512"))
ROUNDS = 3


def measure(size: int) -> None:
    """In this process: prints per-text ms (median of ROUNDS passes) and RSS growth."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "akaplatform.settings")
    import django

    django.setup()
    import psutil

    from apps.cache.embedder import OnnxEmbedder

    with DATA.open() as f:
        texts = [row["text"] for row in csv.DictReader(f)][:TEXTS]
    model = OnnxEmbedder()
    model.embed(texts[:1])
    before = psutil.Process().memory_info().rss
    per_text = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for i in range(0, len(texts), size):
            model.embed(texts[i:i + size])
        per_text.append((time.perf_counter() - started) * 1000 / len(texts))
    grown = (psutil.Process().memory_info().rss - before) / 2**20
    print(f"{size:>6} {statistics.median(per_text):>13.3f} {grown:>14.1f}", flush=True)


def main() -> None:
    sizes = [int(s) for s in (sys.argv[1] if len(sys.argv) > 1 else "1,4,8,16,32,64").split(",")]
    print(f"bench/embed_batch: {TEXTS} Banking77 texts, {ROUNDS} passes per size, one process per size; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'batch':>6} {'ms per text':>13} {'RSS grown MB':>14}", flush=True)
    for size in sizes:
        subprocess.run([sys.executable, __file__, "--one", str(size)], check=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        measure(int(sys.argv[2]))
    else:
        main()
