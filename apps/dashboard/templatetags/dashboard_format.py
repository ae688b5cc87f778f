"""Number formats shared by every page: money, rates, latencies, factors."""

from decimal import Decimal

from django import template

register = template.Library()
DASH = "—"


@register.filter
def usd(value) -> str:
    """Dollars: cents for sums of a dollar or more, four decimals below (one call's cost)."""
    if value is None:
        return DASH
    value = Decimal(value)
    if abs(value) >= 1 or value == 0:
        return f"${value:,.2f}"
    return f"${value:,.4f}"


@register.filter
def micros_usd(value) -> str:
    """A ledger amount in micro-dollars, as dollars with six decimals."""
    return DASH if value is None else f"${Decimal(value) / Decimal(1_000_000):,.6f}"


@register.filter
def pct(value) -> str:
    return DASH if value is None else f"{value * 100:.1f}%"


@register.filter
def ms(value) -> str:
    if value is None:
        return DASH
    return f"{value / 1000:.2f} s" if value >= 10_000 else f"{value:,.0f} ms"


@register.filter
def times(value) -> str:
    return DASH if value is None else f"{value:,.1f}×"


@register.filter
def cents(value) -> str:
    """An amount in integer cents (invoices), as dollars and cents."""
    return DASH if value is None else f"${Decimal(value) / 100:,.2f}"


@register.filter
def minus(value, other):
    return None if value is None or other is None else value - other


@register.filter
def basis_points(value) -> str:
    """A rate in basis points (1/100 of a percent), as a percentage."""
    return DASH if value is None else f"{value / 100:g}%"
