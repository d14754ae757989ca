"""Measuring a version for its calibration: the runtime that serves it answers the held-out rows,
the same rows under synthetic shifts (the task's: a dark, blurred, noisy or faded photo; a text
with typos), and an even spread of its training rows, whose embeddings become the reference
that distances and embedding drift compare with. Each answer is kept with its signals, its
embedding and whether it was right (the task's `correct`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from appliance.tasks import PredictInput, Prediction, Task
from appliance.trust.distance import stack

BATCH = 32
MAX_REFERENCE = 1000
"""Training rows whose embeddings are kept (an even spread when there are more)."""


@dataclass(frozen=True)
class Outcome:
    """One answered row."""

    signals: dict[str, float]
    confidence: float
    embedding: Any
    correct: bool
    shift: str = ""
    """The synthetic shift the input went through; "" for a held-out row as it is."""


@dataclass(frozen=True)
class Measured:
    outcomes: list[Outcome]
    reference: np.ndarray | None
    """The training rows' embeddings, (rows, dims); None when the model gives none."""

    def part(self, shifted: bool) -> list[Outcome]:
        return [o for o in self.outcomes if bool(o.shift) == shifted]


Predict = Callable[[Sequence[PredictInput]], list[Prediction]]


def measure(
    predict: Predict,
    task: Task,
    dataset_dir: Path,
    train_rows: Sequence[Mapping[str, Any]],
    eval_rows: Sequence[Mapping[str, Any]],
    seed: int = 0,
) -> Measured:
    """Answer the held-out rows as they are and shifted (each row once, the shifts in turn),
    and the reference rows, with `predict` (a loaded runtime's)."""
    examples = [task.example(dataset_dir, row) for row in eval_rows]
    outcomes = _answered(predict, task, examples, eval_rows, "")
    shifts = tuple(getattr(task, "shifts", ()))
    if shifts:
        kinds = [shifts[i % len(shifts)] for i in range(len(examples))]
        shifted = [
            task.shift(example, kind, seed * 100_003 + i)
            for i, (example, kind) in enumerate(zip(examples, kinds, strict=True))
        ]
        for kind in shifts:
            chosen = [i for i, k in enumerate(kinds) if k == kind]
            outcomes += _answered(
                predict, task, [shifted[i] for i in chosen], [eval_rows[i] for i in chosen], kind
            )
    step = max(1, len(train_rows) // MAX_REFERENCE)
    spread = list(train_rows[::step])[:MAX_REFERENCE]
    reference = stack(
        [p.embedding for p in _predict_all(predict, [task.example(dataset_dir, r) for r in spread])]
    )
    return Measured(outcomes, reference)


def _answered(
    predict: Predict,
    task: Task,
    inputs: Sequence[PredictInput],
    rows: Sequence[Mapping[str, Any]],
    shift: str,
) -> list[Outcome]:
    predictions = _predict_all(predict, inputs)
    return [
        Outcome(p.signals, p.confidence, p.embedding, task.correct(p, row), shift)
        for p, row in zip(predictions, rows, strict=True)
    ]


def _predict_all(predict: Predict, inputs: Sequence[PredictInput]) -> list[Prediction]:
    predictions: list[Prediction] = []
    for start in range(0, len(inputs), BATCH):
        predictions += predict(inputs[start : start + BATCH])
    return predictions
