"""Latency percentiles from histograms, so rollups can be summed and still answer p50/p95.

Bucket i holds latencies in [BOUNDS[i-1], BOUNDS[i]) ms (bucket 0: below 1 ms, the last:
BOUNDS[-1] and above): PostgreSQL's width_bucket(latency_ms, BOUNDS) numbering. Bounds
grow by 10% per bucket, and a percentile is interpolated linearly inside its bucket, so
it is within 10% of the exact value computed from the calls themselves.
"""

from collections.abc import Mapping

GROWTH = 1.1
BOUNDS: list[float] = [round(1.0 * GROWTH ** i, 3) for i in range(0, 125)]  # 1 ms .. about 150 s


def percentile(hist: Mapping[int, int], q: float) -> float | None:
    """The q-quantile (0..1) of the latencies counted in `hist` ({bucket: calls})."""
    total = sum(hist.values())
    if not total:
        return None
    rank = q * total
    seen = 0
    for bucket in sorted(hist):
        count = hist[bucket]
        if count and seen + count >= rank:
            low = 0.0 if bucket == 0 else BOUNDS[bucket - 1]
            high = BOUNDS[bucket] if bucket < len(BOUNDS) else BOUNDS[-1] * GROWTH
            return low + (high - low) * max(rank - seen, 0) / count
        seen += count
    return BOUNDS[-1]
