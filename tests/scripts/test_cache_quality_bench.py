"""bench/cache_quality's interval beside each wrong-hit rate."""

from bench.cache_quality import interval


def bounds(text: str) -> tuple[float, float]:
    low, high = text.split("-")
    return float(low.rstrip("%")) / 100, float(high.rstrip("%")) / 100


def test_interval_holds_the_observed_rate_and_narrows_with_more_hits():
    low, high = bounds(interval(1, 198))
    assert low < 1 / 198 < high
    assert 0.015 < high < 0.025   # one wrong in 198 does not show a rate under 1%
    wide, narrow = bounds(interval(5, 500)), bounds(interval(50, 5000))
    assert narrow[0] > wide[0] and narrow[1] < wide[1]


def test_interval_starts_at_zero_without_wrong_hits_and_is_empty_without_hits():
    assert bounds(interval(0, 34))[0] == 0.0
    assert interval(0, 0) == "-"
