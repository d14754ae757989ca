"""Small inline SVG plots for the HTML report: bars for counts, a polyline for a measure over
time. Plain strings, no library and no script, so the page opens anywhere and offline."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

WIDTH, HEIGHT = 440, 170
LEFT, RIGHT, TOP, BOTTOM = 46, 12, 26, 30  # the margins around the plot area
BAR_COLOUR = "#3b6fb6"
LINE_COLOUR = "#c2562d"
AXIS_COLOUR = "#888888"


def bars(title: str, labels: Sequence[str], values: Sequence[float | None], empty: str) -> str:
    """One bar per value (None or 0 draws none), the tallest reaching the top of the plot;
    `empty` is written in place of the plot when no value is above zero."""
    if len(labels) != len(values):
        raise ValueError(f"{len(labels)} labels for {len(values)} values")
    heights = [float(v) if v is not None and _finite(v) and v > 0 else 0.0 for v in values]
    top = max(heights, default=0.0)
    if top <= 0:
        return _frame(title, [_message(empty)], "bars")
    plot_w, plot_h = _plot_size()
    step = plot_w / len(values)
    width = max(1.0, step * 0.8)
    shapes = []
    for i, value in enumerate(heights):
        if value <= 0:
            continue
        height = value / top * plot_h
        x = LEFT + i * step + (step - width) / 2
        shapes.append(
            f'<rect x="{x:.1f}" y="{TOP + plot_h - height:.1f}" width="{width:.1f}"'
            f' height="{height:.1f}" fill="{BAR_COLOUR}"><title>{escape(labels[i])}: '
            f"{_number(value)}</title></rect>"
        )
    return _frame(title, [*_axes(0.0, top, labels), *shapes], "bars")


def line(title: str, labels: Sequence[str], values: Sequence[float | None], empty: str) -> str:
    """A polyline through the values that are known (gaps are skipped over; a single point is
    drawn as a dot too), scaled between 0 and the largest; `empty` when none is known."""
    if len(labels) != len(values):
        raise ValueError(f"{len(labels)} labels for {len(values)} values")
    known = [(i, float(v)) for i, v in enumerate(values) if v is not None and _finite(v)]
    if not known:
        return _frame(title, [_message(empty)], "line")
    low = min(0.0, *(v for _, v in known))
    high = max(v for _, v in known)
    if high == low:
        high = low + 1.0  # a flat series draws a flat line, not a division by zero
    plot_w, plot_h = _plot_size()
    step = plot_w / max(1, len(values) - 1)
    points = [
        (LEFT + i * step if len(values) > 1 else LEFT + plot_w / 2,
         TOP + plot_h - (v - low) / (high - low) * plot_h)
        for i, v in known
    ]  # fmt: skip
    text = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    shapes = [
        f'<polyline points="{text}" fill="none" stroke="{LINE_COLOUR}" stroke-width="2"/>',
        *(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{LINE_COLOUR}"/>' for x, y in points),
    ]
    return _frame(title, [*_axes(low, high, labels), *shapes], "line")


def _frame(title: str, body: list[str], kind: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot {kind}" width="{WIDTH}"'
        f' height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img"'
        f' aria-label="{escape(title)}">'
        f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"'
        f' stroke="#dddddd" class="background"/>'
        f'<text x="{LEFT}" y="16" font-size="12" font-weight="bold">{escape(title)}</text>'
        + "".join(body)
        + "</svg>"
    )


def _axes(low: float, high: float, labels: Sequence[str]) -> list[str]:
    """The x and y axes, the y range's two ends and the first and last x labels."""
    plot_w, plot_h = _plot_size()
    bottom = TOP + plot_h
    parts = [
        f'<line x1="{LEFT}" y1="{bottom}" x2="{LEFT + plot_w}" y2="{bottom}"'
        f' stroke="{AXIS_COLOUR}"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}" stroke="{AXIS_COLOUR}"/>',
        _label(LEFT - 4, TOP + 4, _number(high), "end"),
        _label(LEFT - 4, bottom, _number(low), "end"),
    ]
    if labels:
        parts.append(_label(LEFT, bottom + 16, labels[0], "start"))
        if len(labels) > 1:
            parts.append(_label(LEFT + plot_w, bottom + 16, labels[-1], "end"))
    return parts


def _label(x: float, y: float, text: str, anchor: str) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="10" fill="#555555"'
        f' text-anchor="{anchor}">{escape(text)}</text>'
    )


def _message(text: str) -> str:
    return (
        f'<text x="{WIDTH / 2:.0f}" y="{HEIGHT / 2:.0f}" font-size="12" fill="#777777"'
        f' text-anchor="middle" class="empty">{escape(text)}</text>'
    )


def _plot_size() -> tuple[float, float]:
    return WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM


def _finite(value: float) -> bool:
    return math.isfinite(value)


def _number(value: float) -> str:
    return f"{value:.3g}"
