"""Terminal plots: exact strings for small inputs."""

from __future__ import annotations

import math

import pytest

from appliance.plots import bar, sparkline


@pytest.mark.parametrize(
    ("values", "width", "expected"),
    [
        ([], None, ""),
        ([1, 2, 3, 4, 5, 6, 7, 8], None, "▁▂▃▄▅▆▇█"),
        ([0, 10], None, "▁█"),
        ([0, 1, 2], None, "▁▅█"),  # 3.5 rounds half up
        ([0, None, 10], None, "▁ █"),
        ([None, None], None, "  "),
        ([5, 5, 5], None, "▄▄▄"),
        ([7], None, "▄"),
        ([None, 3, None, 3], None, " ▄ ▄"),
        ([0, math.nan, 10, math.inf], None, "▁ █ "),
        # downsampling: buckets [0, 0] [10, 10]
        ([0, 0, 10, 10], 2, "▁█"),
        # uneven buckets [0, 3] [5, 7, 9] -> 1.5, 7
        ([0, 3, 5, 7, 9], 2, "▁█"),
        # gaps are ignored in a bucket; an all-gap bucket stays a gap
        ([None, None, 1, 3], 2, " ▄"),
        ([0, None, 8, 8, None, 16], 3, "▁▅█"),  # 0, 8, 16
        # no downsampling when the series already fits
        ([0, 10], 5, "▁█"),
        ([1, 2, 3], 0, ""),
    ],
)
def test_sparkline(values: list[float | None], width: int | None, expected: str) -> None:
    assert sparkline(values, width) == expected


def test_sparkline_downsampled_length_is_width() -> None:
    assert len(sparkline(list(range(1000)), width=37)) == 37
    assert sparkline(list(range(1000)), width=8) == "▁▂▃▄▅▆▇█"


@pytest.mark.parametrize(
    ("value", "maximum", "width", "expected"),
    [
        (50, 100, 10, "█████"),
        (100, 100, 4, "████"),
        (0, 100, 20, ""),
        (150, 100, 4, "████"),  # clamped to width
        (-5, 100, 4, ""),  # clamped to 0
        (1, 3, 4, "█▍"),  # 4/3 cells = 10.67 eighths -> 11 = 1 full + 3/8
        (1, 16, 1, "▏"),  # exactly half an eighth rounds up
        (0.06, 1, 1, ""),  # 0.48 of an eighth rounds down
        (7, 8, 1, "▉"),
        (1, 8, 1, "▏"),
        (5, 0, 10, ""),  # no scale
        (math.nan, 10, 10, ""),
        (5, 10, 0, ""),
    ],
)
def test_bar(value: float, maximum: float, width: int, expected: str) -> None:
    assert bar(value, maximum, width) == expected


def test_bar_default_width_is_twenty() -> None:
    assert bar(1, 1) == "█" * 20
    assert all(len(bar(v, 10, 6)) <= 6 for v in [x / 7 for x in range(-10, 100)])
