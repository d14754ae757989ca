"""Calibration at serving: a version's `Trust` turns each answer's raw signal (and, where the
calibration uses it, the input's distance from the training rows) into the calibrated
`confidence`, the chance that the answer is right, and marks it `uncertain` below the version's
threshold. It runs on the model instance's thread, after the forward pass, on the whole batch:
one matrix product against the reference embeddings."""

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
        distance = trust.get("distance")
        self.distances: Distances | None = None
        if self.calibrator.method == "logistic":
            if reference is None or not distance:
                raise ValueError("a calibration on distances needs its reference embeddings")
            self.distances = Distances(reference, distance["scale"], distance["k"])

    def apply(self, predictions: Sequence[Prediction]) -> list[Prediction]:
        if not predictions:
            return []
        x = np.array([p.signals.get(self.signal, p.confidence) for p in predictions])
        if self.distances is None:
            calibrated = self.calibrator.apply(x)
        else:
            embeddings = stack([p.embedding for p in predictions])
            dims = self.distances.reference.shape[1]
            far = (
                self.distances(embeddings)
                if embeddings is not None and embeddings.shape[1] == dims
                else np.ones(len(predictions))  # no embedding like the reference's: typical
            )  # fmt: skip
            calibrated = self.calibrator.apply(features(x, far))
        return [
            replace(p, confidence=_rounded(c), uncertain=bool(c < self.threshold))
            for p, c in zip(predictions, calibrated.tolist(), strict=True)
        ]


def _rounded(value: float) -> float:
    return round(value, 4) if math.isfinite(value) else 0.0
