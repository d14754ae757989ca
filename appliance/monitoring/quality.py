"""Live quality without labels, from calibrated confidences (the idea of NannyML's CBPE).

A calibrated confidence p is the chance that the answer is right: of the answers given 0.8,
eight in ten are. Over a window of n answers, the number right is then a sum of independent
Bernoulli(p_i) draws, so the expected share right (exact match for a captioner, accuracy for a
classifier: the task's gate metric) is the mean of the p_i, and the share actually right varies
around it with variance Σ p_i (1 - p_i) / n². The interval given is mean ± 1.96 standard
deviations (a normal approximation, clipped to [0, 1]): where the realised share of the window
lies 95 times in 100, as long as the calibration still holds. It does not hold far from the
training data, which is what input and embedding drift watch; the ratings users give are the
independent check beside it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

Z95 = 1.959964


def estimate(confidences: Iterable[float | None]) -> tuple[float, float, float]:
    """(expected share right, low, high) of a window's calibrated confidences; None and NaN
    values are skipped, the rest clipped to [0, 1]. ValueError when none is left."""
    known = [min(1.0, max(0.0, float(p))) for p in confidences if p is not None and p == p]
    if not known:
        raise ValueError("no calibrated confidence to estimate quality from")
    n = len(known)
    value = sum(known) / n
    spread = Z95 * math.sqrt(sum(p * (1 - p) for p in known)) / n
    return value, max(0.0, value - spread), min(1.0, value + spread)
