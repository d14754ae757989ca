"""What a classifier answers, whatever it reads: the best label and every label's score, the
scores ranked best first and rounded for the answer (as transformers' classification pipelines
answer with `top_k=None`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from appliance.tasks.contract import Field, Prediction

OUTPUTS = (
    Field("label", "BYTES", "The most likely label."),
    Field("confidence", "FP32", "Its score."),
)


def predictions(answers: Sequence[tuple[str, Mapping[str, float]]]) -> list[Prediction]:
    """A predictor's `(label, scores)` pairs as Predictions, the label's score the confidence."""
    return [
        Prediction({"label": label, "scores": {k: float(v) for k, v in scores.items()}},
                   float(scores.get(label, 0.0)))
        for label, scores in answers
    ]  # fmt: skip


def answer(prediction: Prediction) -> dict[str, Any]:
    scores = prediction.output["scores"]
    ranked = dict(sorted(scores.items(), key=lambda kv: -kv[1]))
    return {
        "label": prediction.output["label"],
        "scores": {k: round(v, 4) for k, v in ranked.items()},
    }
