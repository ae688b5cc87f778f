"""Rates kept as fractions (0.007) and written as percentages ("0.7"), converted in decimal
so that what is shown reads back as exactly the rate stored: float arithmetic turns 0.7%
into 0.006999999999999999, which shows as 0.7 and saves back as another number."""

from decimal import Decimal


def from_percent(percent: str | float) -> float:
    """'0.7' (or 0.7) -> 0.007. ValueError when it is not a number."""
    try:
        return float(Decimal(str(percent).strip()) / 100)
    except ArithmeticError:
        raise ValueError(f"not a number: {percent!r}") from None


def as_percent(rate: float) -> str:
    """0.007 -> '0.7': the rate's shortest decimal form, times 100."""
    return format((Decimal(repr(rate)) * 100).normalize(), "f")
