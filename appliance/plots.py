"""Small terminal plots made of Unicode block characters: sparklines for series, bars for
single values. No dependencies, so the CLI can draw metrics without a plotting library."""

from __future__ import annotations

import math
from collections.abc import Sequence

BLOCKS = "▁▂▃▄▅▆▇█"
EIGHTHS = "▏▎▍▌▋▊▉"  # 1/8 .. 7/8 of a cell, left-aligned
FULL = "█"


def sparkline(values: Sequence[float | None], width: int | None = None) -> str:
    """One block per value scaled between the series' min and max; None (a gap), NaN and
    infinities are spaces.

    A constant series draws middle blocks. When `width` is given and there are more values than
    that, consecutive buckets are averaged (ignoring gaps) down to `width` characters.
    """
    points: list[float | None] = [_clean(v) for v in values]
    if width is not None and len(points) > width:
        points = _downsample(points, max(0, width))
    present = [v for v in points if v is not None]
    if not present:
        return " " * len(points)
    low, high = min(present), max(present)
    span = high - low
    top = len(BLOCKS) - 1
    chars = []
    for v in points:
        if v is None:
            chars.append(" ")
        elif span == 0:
            chars.append(BLOCKS[top // 2])
        else:
            chars.append(BLOCKS[_round_half_up((v - low) / span * top)])
    return "".join(chars)


def bar(value: float, maximum: float, width: int = 20) -> str:
    """`value` out of `maximum` as full blocks plus an eighth-block remainder, clamped to
    [0, width] cells. Not padded: use `.ljust(width)` to align columns."""
    if width <= 0 or not maximum > 0 or math.isnan(value):
        return ""
    fraction = min(max(value / maximum, 0.0), 1.0)
    eighths = _round_half_up(fraction * width * 8)
    full, rest = divmod(eighths, 8)
    return FULL * full + (EIGHTHS[rest - 1] if rest else "")


def _clean(value: float | None) -> float | None:
    # NaN and infinities cannot be scaled; draw them as gaps.
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _round_half_up(x: float) -> int:
    # round() rounds halves to even, which would draw 0.5 and 2.5 eighths alike.
    return math.floor(x + 0.5)


def _downsample(points: list[float | None], width: int) -> list[float | None]:
    """Average `points` into `width` consecutive buckets of near-equal size."""
    count = len(points)
    out: list[float | None] = []
    for i in range(width):
        bucket = [v for v in points[i * count // width : (i + 1) * count // width] if v is not None]
        out.append(sum(bucket) / len(bucket) if bucket else None)
    return out
