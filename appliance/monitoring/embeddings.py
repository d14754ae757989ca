"""Embedding drift: has the model started to *see* something its training set did not hold?

A served model can give one vector per request (say the mean-pooled encoder output of a
captioner); its version keeps the vectors of up to 1000 training rows as the reference. A window
of live vectors is compared with that reference by a two-sample test, which asks: could these two
piles of vectors have come from the same place? Two tests answer it here; both first scale every
vector to length 1, so only its direction counts (cosine geometry), and both give a p-value: how
often a difference at least this large would show up by chance alone. A small p-value is drift.

* `mmd_test`, kernel maximum mean discrepancy. Every pair of vectors gets a similarity between 0
  and 1 (a Gaussian kernel whose width is the median squared distance between the vectors). The
  statistic is the mean similarity within the reference, plus that within the live window, minus
  twice that across the two: near 0 when they are mixed alike, larger when each side resembles
  itself more than the other. Its p-value comes from shuffling: the pooled vectors are split at
  random into two groups of the same sizes many times, and the p-value is the share of shuffles
  whose statistic reaches the real one.
* `classifier_test`, a domain classifier. A small logistic regression learns to tell reference
  from live vectors (on their top 32 principal axes when they are wider than 64). The rows are
  split into halves (folds); a model trained on one half scores the other, and the other way
  round, and each half's AUC is the chance that a live row of it scores above a reference row.
  Without drift no classifier can beat a coin (AUC 0.5); the p-value is how unlikely the mean
  AUC is under that coin. It takes the chance spread of *one* half's AUC, not the smaller one of
  all rows together: each half's model learns the noise the other half is scored on, so the two
  AUCs rise and fall together (with the all-rows spread, 4-5% of same-distribution windows
  were flagged at alpha 0.01).

Without drift either test flags at most about a share alpha of windows, whatever the data (the
permutation p-value exactly, the classifier's up to its normal approximation). MMD measured the
stronger of the two on a mixture with an unseen cluster (tests, scripts/bench_embedding_drift.py).
Vectors are stored as float16 rows (`to_blob`, `from_blob`). numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

MIN_LIVE = 30
"""Callers skip a test below this many live rows: too few to say anything either way."""

BANDWIDTH_ROWS = 500  # the median heuristic looks at most at this many pooled rows
PCA_ABOVE, PCA_DIMS = 64, 32  # the classifier projects wider vectors to this many dims first
RIDGE = 10.0  # L2 penalty of the logistic regression, in units of one (weighted) training row


@dataclass(frozen=True)
class EmbeddingDrift:
    """One two-sample test of live embeddings against a version's reference embeddings."""

    method: str  # "mmd" or "classifier"
    statistic: float  # the MMD² estimate, or the classifier's held-out AUC
    p_value: float
    reference: int  # rows used on each side, after subsampling
    live: int
    drifted: bool  # p_value < alpha

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "statistic": round(self.statistic, 4),
                "p_value": round(self.p_value, 4), "reference": self.reference,
                "live": self.live, "drifted": self.drifted}  # fmt: skip


def _prepare(
    reference: np.ndarray, live: np.ndarray, max_reference: int, max_live: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Both sides checked, subsampled to their caps (seeded) and scaled to unit length."""
    ref, liv = np.asarray(reference, dtype=np.float64), np.asarray(live, dtype=np.float64)
    if ref.ndim != 2 or liv.ndim != 2:
        raise ValueError(f"embeddings must be 2-D (rows, dims); got {ref.shape} and {liv.shape}")
    if ref.shape[1] != liv.shape[1]:
        raise ValueError(f"reference has {ref.shape[1]} dims but live has {liv.shape[1]}")
    if len(liv) < 2 or len(ref) < 2:
        raise ValueError(f"need at least 2 rows on each side; got {len(ref)} reference and "
                         f"{len(liv)} live (callers skip below MIN_LIVE={MIN_LIVE})")  # fmt: skip
    if not (np.isfinite(ref).all() and np.isfinite(liv).all()):
        raise ValueError("embeddings hold NaN or infinite values")
    sides = []
    for rows, cap in ((ref, max_reference), (liv, max_live)):
        if len(rows) > cap:
            rows = rows[np.sort(rng.choice(len(rows), cap, replace=False))]
        norms = np.linalg.norm(rows, axis=1, keepdims=True)
        sides.append(np.divide(rows, norms, out=np.zeros_like(rows), where=norms > 0))
    return sides[0], sides[1]


def mmd_test(
    reference: np.ndarray, live: np.ndarray, alpha: float = 0.01, permutations: int = 200,
    seed: int = 0, max_reference: int = 1000, max_live: int = 500,
) -> EmbeddingDrift:  # fmt: skip
    """Kernel MMD² between the two sides, with a permutation p-value."""
    if alpha <= 1 / (permutations + 1):
        raise ValueError(f"{permutations} permutations can never give a p-value below {alpha}")
    rng = np.random.default_rng(seed)
    ref, liv = _prepare(reference, live, max_reference, max_live, rng)
    n, m = len(ref), len(liv)
    pooled = np.vstack([ref, liv])
    size = n + m
    sq = np.einsum("ij,ij->i", pooled, pooled)
    dist = np.maximum(sq[:, None] + sq[None, :] - 2 * (pooled @ pooled.T), 0.0)
    # Median heuristic: the kernel's width is the median pairwise squared distance of the pooled
    # rows (of a seeded subsample of them, for speed).
    some = np.sort(rng.choice(size, min(size, BANDWIDTH_ROWS), replace=False))
    median = float(np.median(dist[np.ix_(some, some)][np.triu_indices(len(some), 1)]))
    kernel = np.exp(-dist / (median if median > 0 else 1.0))
    np.fill_diagonal(kernel, 0.0)  # the unbiased estimate leaves out each row's self-similarity
    # Column 0 of `inside` marks the real reference rows; each further column, those of a random
    # split of the pooled rows into the same sizes. With K the kernel and a the column, the sums
    # of K over reference-reference, reference-live and live-live pairs are a'Ka, a'K(1-a) and
    # the rest, so one product K @ inside gives the statistic of every split at once.
    inside = np.zeros((size, permutations + 1))
    inside[:n, 0] = 1.0
    order = np.argsort(rng.random((permutations, size)), axis=1)[:, :n]
    inside[order, np.arange(1, permutations + 1)[:, None]] = 1.0
    k_inside = kernel @ inside
    within = np.einsum("ij,ij->j", inside, k_inside)  # Σ over pairs i ≠ j inside the group
    across = k_inside.sum(axis=0) - within
    rest = kernel.sum() - within - 2 * across
    # Unbiased MMD² (Gretton et al. 2012, eq. 3): it can dip below 0 when nothing differs.
    stats = within / (n * (n - 1)) + rest / (m * (m - 1)) - 2 * across / (n * m)
    observed = float(stats[0])
    exceed = int(np.count_nonzero(stats[1:] >= observed - 1e-12))
    p_value = (1 + exceed) / (1 + permutations)
    return EmbeddingDrift("mmd", observed, p_value, n, m, p_value < alpha)


def _orthonormal(columns: np.ndarray) -> np.ndarray:
    """An orthonormal basis of the columns' span, from the eigenvectors of their small Gram matrix.

    Not np.linalg.qr: OpenBLAS's threaded QR of a tall matrix took 0.5 s instead of 2 ms when
    another process was busy on the same 2 cores; this takes only matrix products."""
    values, vectors = np.linalg.eigh(columns.T @ columns)
    keep = values > values[-1] * 1e-12
    return np.asarray(columns @ (vectors[:, keep] / np.sqrt(values[keep])))


def _project(rows: np.ndarray, dims: int, rng: np.random.Generator) -> np.ndarray:
    """The rows on their top `dims` principal axes (seeded randomised SVD, 2 power steps)."""
    centred = rows - rows.mean(axis=0)
    basis = _orthonormal(centred @ rng.standard_normal((rows.shape[1], dims + 10)))
    for _ in range(2):
        basis = _orthonormal(centred @ (centred.T @ basis))
    # With B = basis' centred ≈ the rows' leading part, B B' = W Λ W' gives the top left singular
    # vectors basis W and singular values √Λ: the principal component scores are basis W √Λ.
    leading = basis.T @ centred
    values, vectors = np.linalg.eigh(leading @ leading.T)  # ascending
    top = vectors[:, ::-1][:, :dims]
    return np.asarray(basis @ top * np.sqrt(np.maximum(values[::-1][:dims], 0.0)))


def _fit_logistic(x: np.ndarray, y: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Coefficients (last one the intercept) of an L2-penalised logistic regression, by Newton."""
    design = np.hstack([x, np.ones((len(x), 1))])
    penalty = np.full(design.shape[1], RIDGE)
    penalty[-1] = 1e-8  # the intercept goes unpenalised
    beta = np.zeros(design.shape[1])
    for _ in range(50):
        p = 1 / (1 + np.exp(-np.clip(design @ beta, -30, 30)))
        gradient = design.T @ (weight * (p - y)) + penalty * beta
        hessian = (design.T * (weight * p * (1 - p))) @ design + np.diag(penalty)
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    return beta


def _auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """P(a positive scores above a negative), ties counting half (the Mann-Whitney U / n1 n0)."""
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2)[inverse]  # average 1-based rank of each tie
    n1 = int(positive.sum())
    n0 = len(scores) - n1
    return float((ranks[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def classifier_test(
    reference: np.ndarray, live: np.ndarray, alpha: float = 0.01, seed: int = 0, folds: int = 2,
    max_reference: int = 1000, max_live: int = 500,
) -> EmbeddingDrift:  # fmt: skip
    """A logistic regression telling live from reference rows, scored by its out-of-fold AUC."""
    rng = np.random.default_rng(seed)
    ref, liv = _prepare(reference, live, max_reference, max_live, rng)
    n, m = len(ref), len(liv)
    if not 2 <= folds <= m:
        raise ValueError(f"folds must be between 2 and the live rows ({m}); got {folds}")
    x = np.vstack([ref, liv])
    if x.shape[1] > PCA_ABOVE:
        x = _project(x, PCA_DIMS, rng)  # unsupervised, so fitting it on every row leaks nothing
    y = np.r_[np.zeros(n), np.ones(m)]
    fold = np.empty(n + m, dtype=int)  # stratified: each fold gets its share of either side
    for side in (np.arange(n), np.arange(n, n + m)):
        fold[rng.permutation(side)] = np.arange(len(side)) % folds
    aucs, variances = [], []
    for f in range(folds):
        train, test = fold != f, fold == f
        mean, std = x[train].mean(axis=0), x[train].std(axis=0)
        std[std < 1e-12] = 1.0
        ytr = y[train]
        weight = np.where(ytr == 1, 0.5 / ytr.mean(), 0.5 / (1 - ytr.mean()))  # balanced classes
        beta = _fit_logistic((x[train] - mean) / std, ytr, weight)
        aucs.append(_auc(((x[test] - mean) / std) @ beta[:-1], y[test] == 1))
        # Under no difference a fold's AUC is a Mann-Whitney U / (n1 n0): mean 1/2, variance
        # (n1 + n0 + 1) / (12 n1 n0), whatever the model (its test labels are a random draw).
        n1 = int(y[test].sum())
        n0 = int(test.sum()) - n1
        variances.append((n1 + n0 + 1) / (12 * n1 * n0))
    # The folds' AUCs are strongly correlated (each fold's model learns the noise that the other
    # folds are scored on), so the variance of their mean is bounded by the largest, not divided
    # by the folds: with 2 folds that bound is what the null measures (z sd 1.4 against the
    # whole-sample formula's 1).
    auc = float(np.mean(aucs))
    z = (auc - 0.5) / math.sqrt(max(variances))
    p_value = 0.5 * math.erfc(z / math.sqrt(2))  # one-sided: only AUC > 0.5 is drift
    return EmbeddingDrift("classifier", auc, p_value, n, m, p_value < alpha)


METHODS: dict[str, Callable[..., EmbeddingDrift]] = {"mmd": mmd_test, "classifier": classifier_test}


def embedding_drift(
    reference: np.ndarray, live: np.ndarray, method: str = "mmd", **kw: Any
) -> EmbeddingDrift:
    """The named test (`METHODS`) of live against reference embeddings."""
    if method not in METHODS:
        raise ValueError(f"unknown embedding drift method {method!r}; valid: {', '.join(METHODS)}")
    return METHODS[method](reference, live, **kw)


def to_blob(embeddings: np.ndarray) -> bytes:
    """Rows as little-endian float16 bytes (2 bytes a value, rows one after another)."""
    rows = np.asarray(embeddings, dtype=np.float64)
    with np.errstate(over="ignore"):
        half = rows.astype("<f2")
    if not np.isfinite(half[np.isfinite(rows)]).all():
        raise ValueError("embedding values beyond ±65504 do not fit in float16")
    return half.tobytes()


def from_blob(data: bytes, dims: int) -> np.ndarray:
    """The (rows, dims) float32 array that `to_blob` stored."""
    if dims < 1 or len(data) % (2 * dims):
        raise ValueError(f"a blob of {len(data)} bytes is not whole float16 rows of {dims} dims")
    return np.frombuffer(data, dtype="<f2").astype(np.float32).reshape(-1, dims)
