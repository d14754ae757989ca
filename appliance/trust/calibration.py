"""Calibration: turning a model's raw confidence into an honest chance that the answer is right.

A served model gives every answer a few raw scores, its *signals*: the mean, minimum and geometric
mean of its token probabilities, its negative mean entropy, or for a classifier the largest softmax
probability. Higher means "more sure", but the numbers are rarely probabilities you can believe: a
model that says 0.95 may be right only 60% of the time. On held-out rows we know whether each
answer was correct, so we can learn a *calibrator*, a small monotone map from a signal (or a few
signals together) to P(correct), and measure how good the result is:

- `ece`, the expected calibration error: sort answers into equal-width confidence bins and
  average, weighted by bin size, the gap between each bin's mean confidence and its accuracy
  (`reliability` is the same table, bin by bin);
- `error_auroc`: how well low confidence picks out the wrong answers (0.5 is chance, 1.0 perfect);
- `brier`: the mean squared gap between confidence and the 0/1 outcome.

Calibrators (`Calibrator`, stored as plain JSON) are fitted three ways: `fit_platt` (logistic
regression on the signal's logit: temperature scaling plus a bias, for probability-like signals),
`fit_isotonic` (the best non-decreasing step function, by pool-adjacent-violators), and
`fit_logistic` (several signals at once). To judge a calibrator on the same rows it learns from
without fooling ourselves, `out_of_fold` predicts each row with a calibrator fitted on the other
folds. Finally `choose_threshold` picks the confidence below which an answer is flagged
"uncertain", so that a chosen share of the wrong answers gets the warning.

Everything here is pure numpy over at most a few thousand numbers: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

METHODS = ("identity", "platt", "isotonic", "logistic")
_LOW, _HIGH = 0.001, 0.999  # calibrated outputs never claim certainty
CLIP = (_LOW, _HIGH)
"""The range every calibrated confidence is clipped to."""
_EPS = 1e-6  # how far a probability is kept from 0 and 1 before its logit is taken


def _pair(confidence: Any, correct: Any) -> tuple[np.ndarray, np.ndarray]:
    """The two inputs as 1-D float arrays of one length (correct as 0.0/1.0)."""
    c = np.asarray(confidence, dtype=float).reshape(-1)
    y = np.asarray(correct, dtype=float).reshape(-1)
    if c.shape != y.shape:
        raise ValueError(f"{c.size} confidences but {y.size} outcomes")
    return c, y


def _bin_index(c: np.ndarray, bins: int) -> np.ndarray:
    """Equal-width bin over [0, 1] of each confidence; exactly 1.0 falls in the last bin."""
    if bins < 1:
        raise ValueError("bins must be at least 1")
    return np.clip(np.floor(np.clip(c, 0.0, 1.0) * bins).astype(int), 0, bins - 1)


def ece(confidence: Any, correct: Any, bins: int = 10) -> float:
    """Expected calibration error: sum over bins of (count / n) * |accuracy - mean confidence|."""
    c, y = _pair(confidence, correct)
    if c.size == 0:
        return 0.0
    index = _bin_index(c, bins)
    # Per bin, |sum of outcomes - sum of confidences| is count * |accuracy - mean confidence|.
    gap = np.abs(np.bincount(index, y, bins) - np.bincount(index, c, bins))
    return float(gap.sum() / c.size)


def reliability(confidence: Any, correct: Any, bins: int = 10) -> list[dict[str, Any]]:
    """The reliability table: per non-empty bin its edges, size, mean confidence and accuracy."""
    c, y = _pair(confidence, correct)
    index = _bin_index(c, bins)
    rows = []
    for b in np.unique(index):
        inside = index == b
        rows.append(
            {
                "low": round(b / bins, 4),
                "high": round((b + 1) / bins, 4),
                "count": int(inside.sum()),
                "confidence": round(float(c[inside].mean()), 4),
                "accuracy": round(float(y[inside].mean()), 4),
            }
        )
    return rows


def auroc(scores: Any, positives: Any) -> float:
    """P(a random positive scores above a random negative), ties counting half; 0.5 if a class is
    empty. Computed from average ranks (the Mann-Whitney U statistic), so O(n log n)."""
    s, p = _pair(scores, positives)
    is_pos = p > 0.5
    n_pos, n_neg = int(is_pos.sum()), int((~is_pos).sum())
    if n_pos == 0 or n_neg == 0:
        return 0.5
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    first = np.cumsum(counts) - counts  # 0-based rank of each distinct value's first member
    ranks = (first + (counts + 1) / 2.0)[inverse]  # 1-based average rank of every score
    u = ranks[is_pos].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def error_auroc(confidence: Any, correct: Any) -> float:
    """How well LOW confidence ranks the WRONG answers first: auroc(-confidence, not correct)."""
    c, y = _pair(confidence, correct)
    return auroc(-c, y < 0.5)


def brier(confidence: Any, correct: Any) -> float:
    """Mean squared difference between confidence and the 0/1 outcome (0.0 for no rows)."""
    c, y = _pair(confidence, correct)
    return float(np.mean((c - y) ** 2)) if c.size else 0.0


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -500.0, 500.0)))


def _logit(x: np.ndarray) -> np.ndarray:
    p = np.clip(x, _EPS, 1.0 - _EPS)
    return np.log(p / (1.0 - p))


@dataclass(frozen=True)
class Calibrator:
    """A fitted map from raw signal(s) to P(correct); `params` holds only lists and floats."""

    method: str
    params: dict[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown calibration method {self.method!r}")

    def apply(self, x: np.ndarray) -> np.ndarray:
        """P(correct) for each row: x has shape (n,), or (n, k) for the logistic method."""
        values = np.asarray(x, dtype=float)
        if self.method == "identity":
            return np.clip(values, 0.0, 1.0)
        if self.method == "platt":
            p = _sigmoid(self.params["a"] * _logit(values) + self.params["b"])
        elif self.method == "isotonic":
            p = np.interp(values, self.params["x"], self.params["y"])
        else:
            mean = np.asarray(self.params["mean"], dtype=float)
            if values.ndim == 1 and mean.size == 1:
                values = values[:, None]
            if values.ndim != 2 or values.shape[1] != mean.size:
                raise ValueError(f"expected rows of {mean.size} features, got {values.shape}")
            z = (values - mean) / np.asarray(self.params["std"], dtype=float)
            p = _sigmoid(z @ np.asarray(self.params["w"], dtype=float) + self.params["b"])
        return np.clip(p, _LOW, _HIGH)

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "params": _plain(self.params)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Calibrator:
        return cls(method=str(data["method"]), params=_plain(dict(data.get("params", {}))))


def _plain(value: Any) -> Any:
    """A deep copy made of dicts, lists and Python scalars (numpy arrays and numbers converted)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _newton(
    design: np.ndarray, y: np.ndarray, penalty: np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    """Coefficients minimising the (weighted) mean log-loss + 0.5 * sum(penalty * beta^2), by
    Newton's method (iteratively reweighted least squares) with step halving; the penalty is
    per row, so its strength does not depend on how many rows there are, and it keeps perfectly
    separable data finite. `weights` (one per row, default 1) say how much each row counts."""
    w = np.ones(design.shape[0]) if weights is None else np.asarray(weights, dtype=float)
    w = w / w.mean()
    n = design.shape[0]
    beta = np.zeros(design.shape[1])

    def loss(b: np.ndarray) -> float:
        z = design @ b
        return float(np.mean(w * (np.logaddexp(0.0, z) - y * z)) + 0.5 * np.sum(penalty * b * b))

    current = loss(beta)
    for _ in range(100):
        p = _sigmoid(design @ beta)
        gradient = design.T @ (w * (p - y)) / n + penalty * beta
        hessian = (design.T * (w * p * (1.0 - p))) @ design / n + np.diag(penalty)
        hessian += 1e-12 * np.eye(len(beta))
        step = np.linalg.solve(hessian, gradient)
        scale = 1.0
        while scale > 1e-6 and loss(beta - scale * step) > current + 1e-15:
            scale /= 2.0
        beta = beta - scale * step
        current = loss(beta)
        if np.max(np.abs(scale * step)) < 1e-10:
            break
    return beta


def _one_class(y: np.ndarray) -> bool:
    return y.size > 0 and bool(np.all(y == y[0]))


def fit_platt(x: Any, correct: Any, l2: float = 1e-3) -> Calibrator:
    """Logistic regression of correct on logit(x) with an intercept: P = sigmoid(a*logit(x) + b).
    Meant for probability-like signals in [0, 1]; a signal of another range wants isotonic."""
    c, y = _pair(x, correct)
    if c.size == 0:
        raise ValueError("cannot calibrate on no rows")
    if _one_class(y):  # the optimum is flat and infinitely far: keep it flat and finite
        return Calibrator("platt", {"a": 0.0, "b": float(_logit(np.array([y.mean()]))[0])})
    design = np.column_stack([_logit(c), np.ones_like(c)])
    a, b = _newton(design, y, np.array([l2, 0.0]))
    return Calibrator("platt", {"a": float(a), "b": float(b)})


def fit_isotonic(x: Any, correct: Any) -> Calibrator:
    """The non-decreasing step function closest (least squares) to the outcomes, by
    pool-adjacent-violators over the distinct x values (tied x pooled first). Only each block's
    two end points are kept; np.interp through them gives the same value at every training x."""
    c, y = _pair(x, correct)
    if c.size == 0:
        raise ValueError("cannot calibrate on no rows")
    xs, inverse = np.unique(c, return_inverse=True)
    weight = np.bincount(inverse).astype(float)
    total = np.bincount(inverse, y)
    # Blocks as parallel stacks: summed outcome, weight, first and last distinct-x index.
    sums: list[float] = []
    weights: list[float] = []
    starts: list[int] = []
    ends: list[int] = []
    for i in range(xs.size):
        s, w, start = float(total[i]), float(weight[i]), i
        while sums and sums[-1] / weights[-1] >= s / w:  # merge while the order is violated
            s, w, start = s + sums.pop(), w + weights.pop(), starts.pop()
            ends.pop()
        sums.append(s)
        weights.append(w)
        starts.append(start)
        ends.append(i)
    knots_x: list[float] = []
    knots_y: list[float] = []
    for s, w, start, end in zip(sums, weights, starts, ends, strict=True):
        for index in (start, end) if end > start else (start,):
            knots_x.append(float(xs[index]))
            knots_y.append(s / w)
    return Calibrator("isotonic", {"x": knots_x, "y": knots_y})


def fit_logistic(features: Any, correct: Any, l2: float = 1e-2, weights: Any = None) -> Calibrator:
    """Logistic regression on several signals at once (rows of k features), each standardised by
    its mean and standard deviation (1.0 for a constant column); L2 on the weights only;
    `weights` say how much each row counts (default: all alike)."""
    f = np.asarray(features, dtype=float)
    if f.ndim == 1:
        f = f[:, None]
    y = np.asarray(correct, dtype=float).reshape(-1)
    if f.ndim != 2 or f.shape[0] != y.size:
        raise ValueError(f"features of shape {f.shape} but {y.size} outcomes")
    if y.size == 0:
        raise ValueError("cannot calibrate on no rows")
    mean = f.mean(axis=0)
    std = f.std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)
    k = f.shape[1]
    if _one_class(y):
        w, b = np.zeros(k), float(_logit(np.array([y.mean()]))[0])
    else:
        design = np.column_stack([(f - mean) / std, np.ones(f.shape[0])])
        beta = _newton(design, y, np.array([l2] * k + [0.0]), weights)
        w, b = beta[:k], float(beta[k])
    params = {"mean": _plain(mean), "std": _plain(std), "w": _plain(w), "b": b}
    return Calibrator("logistic", params)


def out_of_fold(
    fit: Callable[[np.ndarray, np.ndarray], Calibrator],
    x: Any,
    correct: Any,
    folds: int = 5,
    seed: int = 0,
) -> np.ndarray:
    """Each row's calibrated prediction from a calibrator fitted on the other folds. Folds are
    random (numpy Generator seeded by `seed`) and stratified by correctness; x is (n,) or (n, k).
    A training part holding one class only predicts its own accuracy for its fold."""
    values = np.asarray(x, dtype=float)
    y = np.asarray(correct, dtype=float).reshape(-1)
    n = y.size
    if values.shape[0] != n:
        raise ValueError(f"{values.shape[0]} rows but {n} outcomes")
    if folds < 2 or n < 2:
        raise ValueError("out-of-fold predictions need at least 2 folds and 2 rows")
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(np.flatnonzero(y == v)) for v in np.unique(y)])
    fold_of = np.empty(n, dtype=int)
    fold_of[order] = np.arange(n) % folds  # round-robin across both classes in turn
    predictions = np.empty(n)
    for k in range(folds):
        held = fold_of == k
        if not held.any():
            continue
        train_y = y[~held]
        if np.all(train_y == train_y[0]):
            predictions[held] = train_y.mean()
        else:
            predictions[held] = fit(values[~held], train_y).apply(values[held])
    return predictions


def choose_threshold(confidence: Any, correct: Any, target_recall: float = 0.7) -> dict[str, Any]:
    """The smallest observed confidence t such that warning on `confidence < t` catches at least
    `target_recall` of the wrong answers, with what that warning achieves. The threshold sits
    just above the deciding wrong answer's confidence (the next distinct observed value, or that
    value + 1e-6 if it is the largest), and is shortened to 4 decimals whenever that warns
    exactly the same answers."""
    if not 0.0 <= target_recall <= 1.0:
        raise ValueError("target_recall must lie in [0, 1]")
    c, y = _pair(confidence, correct)
    wrong = y < 0.5
    m = int(wrong.sum())
    if m == 0:
        return {
            "threshold": 0.0,
            "recall": None,
            "precision": None,
            "warned_share": 0.0,
            "wrong": 0,
            "count": int(c.size),
        }
    needed = min(m, math.ceil(target_recall * m - 1e-9))  # 0.7 * 10 is 7.000000000000001
    distinct = np.unique(c)
    if needed == 0:
        t = float(distinct[0])  # warns nobody, and nobody had to be warned
    else:
        deciding = np.sort(c[wrong])[needed - 1]
        above = distinct[distinct > deciding]
        t = float(above[0]) if above.size else float(deciding) + 1e-6
    warned = c < t
    for decimals in range(4, 16):
        if np.array_equal(c < round(t, decimals), warned):
            t = round(t, decimals)
            break
    caught = int((warned & wrong).sum())
    return {
        "threshold": t,
        "recall": round(caught / m, 4),
        "precision": round(caught / int(warned.sum()), 4) if warned.any() else None,
        "warned_share": round(float(warned.mean()), 4),
        "wrong": m,
        "count": int(c.size),
    }
