"""Server-rendered SVG charts: geometry computed here, drawn by templates/dashboard/_chart.html.
No script runs in the browser; the figures beside each chart carry its numbers."""

import math
from dataclasses import dataclass

WIDTH, HEIGHT, PAD_LEFT, PAD_RIGHT, PAD_BOTTOM, PAD_TOP = 640, 200, 56, 24, 24, 8


@dataclass(frozen=True)
class Line:
    label: str
    css: str      # class naming the colour in the stylesheet
    points: str   # SVG polyline points


@dataclass(frozen=True)
class Chart:
    title: str
    lines: list[Line]
    y_max: str
    x_labels: list[tuple[float, str]]   # (x, text)
    width: int = WIDTH
    height: int = HEIGHT


def nice_max(value: float) -> float:
    """A round axis maximum at or above `value` (1, 2, 2.5 or 5 times a power of ten)."""
    value = float(value)
    if value <= 0:
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(value))
    return next(step * magnitude for step in (1, 2, 2.5, 5, 10) if value <= step * magnitude * (1 + 1e-9))


def line_chart(title: str, times: list, series: list[tuple[str, str, list[float]]], fmt=str, time_fmt="%b %d") -> Chart:
    """Lines over time sharing one y axis starting at 0."""
    top = nice_max(max((max(values, default=0) for _, _, values in series), default=0))
    n = max(len(times) - 1, 1)
    plot_w, plot_h = WIDTH - PAD_LEFT - PAD_RIGHT, HEIGHT - PAD_BOTTOM - PAD_TOP

    def x(i: int) -> float:
        return round(PAD_LEFT + plot_w * i / n, 1)

    def y(v: float) -> float:
        return round(PAD_TOP + plot_h * (1 - float(v) / top), 1)

    lines = [Line(label, css, " ".join(f"{x(i)},{y(v)}" for i, v in enumerate(values)))
             for label, css, values in series]
    every = max(1, len(times) // 6)
    labels = [(x(i), t.strftime(time_fmt)) for i, t in enumerate(times) if i % every == 0]
    return Chart(title, lines, fmt(top), labels)


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    share: float
    width: float   # percent of the track


def share_bars(items: list[tuple[str, int, float]]) -> list[Bar]:
    return [Bar(label, value, share, round(share * 100, 1)) for label, value, share in items]
