"""Distance from the training data: how unlike anything a version was trained on an input looks
to the model itself. An input's distance is one less the mean cosine similarity of its embedding
to its `K` nearest training embeddings, divided by the median distance of the version's held-out
rows (`scale`): about 1 for an input like the training data, and growing as it moves away. A
decoder can be sure of itself on a photo its encoder has never seen the like of; this is what
tells calibration (calibrate.py) that it should not be."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

K = 10
"""Nearest training rows an input's distance is averaged over."""


def normalised(rows: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero), float32."""
    rows = np.asarray(rows, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norms > 0, norms, 1.0)


class Distances:
    """The distance of embeddings from a version's reference (training) embeddings."""

    def __init__(self, reference: np.ndarray, scale: float = 1.0, k: int = K):
        self.reference = normalised(reference)
        self.k = max(1, min(k, len(self.reference)))
        self.scale = scale if scale > 0 else 1.0
        self._columns: Any = None  # the reference as a torch matrix, made on first use

    def raw(self, embeddings: np.ndarray) -> np.ndarray:
        """One less the mean cosine similarity to the `k` nearest reference rows.

        The product is torch's, not numpy's: at serving it runs on the model instance's thread,
        where torch's thread team is the model's own. numpy's would wake OpenBLAS's pool of
        threads, which spins on the same cores after each product: measured at c=32 on two
        cores, that halved a captioner's throughput (235 img/s against 462 with OpenBLAS on one
        thread; docs/benchmarks.md, Prediction capture)."""
        import torch

        if self._columns is None:
            self._columns = torch.from_numpy(np.ascontiguousarray(self.reference.T))
        queries = torch.from_numpy(normalised(np.atleast_2d(embeddings)))
        with torch.inference_mode():
            nearest = (queries @ self._columns).topk(self.k, dim=1).values
        return np.asarray(1.0 - nearest.mean(dim=1).numpy(), dtype=np.float64)

    def __call__(self, embeddings: np.ndarray) -> np.ndarray:
        """The scaled distances (about 1 for inputs like the held-out rows)."""
        return self.raw(embeddings) / self.scale


def stack(embeddings: Sequence[Any]) -> np.ndarray | None:
    """The embeddings of a batch as one (n, dims) array; None unless every one has one, of the
    same length."""
    if not embeddings or any(e is None for e in embeddings):
        return None
    lengths = {len(e) for e in embeddings}
    if len(lengths) != 1 or 0 in lengths:
        return None
    return np.asarray(embeddings, dtype=np.float32)
