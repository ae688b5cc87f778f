"""Rates kept as fractions (0.007) and written as percentages ("0.7"), converted in decimal
so that what is shown reads back as exactly the rate stored: float arithmetic turns 0.7%
into 0.006999999999999999, which shows as 0.7 and saves back as another number."""

import math
from decimal import Decimal


def from_percent(percent: str | float) -> float:
    """'0.7' (or 0.7) -> 0.007. ValueError when it is not a finite number ('nan' and
    'inf' parse as decimals, and NaN passes every bound check)."""
    try:
        value = Decimal(str(percent).strip())
    except ArithmeticError:
        raise ValueError(f"not a number: {percent!r}") from None
    rate = float(value / 100) if value.is_finite() else math.nan
    if not math.isfinite(rate):   # '1e400' is a finite decimal but no float
        raise ValueError(f"not a finite number: {percent!r}")
    return rate


def as_percent(rate: float) -> str:
    """0.007 -> '0.7': the rate's shortest decimal form, times 100."""
    return format((Decimal(repr(rate)) * 100).normalize(), "f")
