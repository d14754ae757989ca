"""Calibration at serving: a version's `Trust` turns each answer's raw signal (and, where the
calibration uses it, the input's distance from the training rows) into the calibrated
`confidence`, the chance that the answer is right, and marks it `uncertain` below the version's
threshold, and `unfamiliar` when its input is farther from the training rows than the version's
held-out rows go (the review queue keeps those). It runs on the model instance's thread, after
the forward pass, on the whole batch: one matrix product against the reference embeddings."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from appliance.tasks import Prediction
from appliance.trust.calibration import Calibrator
from appliance.trust.distance import Distances, stack
from appliance.trust.fit import features


class Trust:
    def __init__(self, trust: dict[str, Any], reference: np.ndarray | None):
        self.signal = str(trust["signal"])
        self.calibrator = Calibrator.from_json(trust["calibrator"])
        self.threshold = float((trust.get("uncertain") or {}).get("threshold") or 0.0)
        distance = trust.get("distance") or {}
        self.distances: Distances | None = None
        self.logistic = self.calibrator.method == "logistic"
        if self.logistic and (reference is None or not distance):
            raise ValueError("a calibration on distances needs its reference embeddings")
        self.unfamiliar = float(distance.get("unfamiliar") or 0.0)
        """Farther than this is unfamiliar; 0: not measured (a version fitted before it was)."""
        if reference is not None and distance and (self.logistic or self.unfamiliar > 0):
            self.distances = Distances(reference, distance["scale"], distance["k"])

    def apply(self, predictions: Sequence[Prediction]) -> list[Prediction]:
        if not predictions:
            return []
        x = np.array([p.signals.get(self.signal, p.confidence) for p in predictions])
        far: np.ndarray | None = None
        if self.distances is not None:
            embeddings = stack([p.embedding for p in predictions])
            if embeddings is not None and embeddings.shape[1] == self.distances.reference.shape[1]:
                far = self.distances(embeddings)
        if self.logistic:
            typical = np.ones(len(predictions))  # no embedding like the reference's: typical
            calibrated = self.calibrator.apply(features(x, far if far is not None else typical))
        else:
            calibrated = self.calibrator.apply(x)
        unfamiliar = (
            [bool(d > self.unfamiliar) for d in far.tolist()]
            if far is not None and self.unfamiliar > 0
            else [None] * len(predictions)
        )
        return [
            replace(p, confidence=_rounded(c), uncertain=bool(c < self.threshold), unfamiliar=u)
            for p, c, u in zip(predictions, calibrated.tolist(), unfamiliar, strict=True)
        ]


def _rounded(value: float) -> float:
    return round(value, 4) if math.isfinite(value) else 0.0
