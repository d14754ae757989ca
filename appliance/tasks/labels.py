"""What a classifier answers, whatever it reads: the best label and every label's score, the
scores ranked best first and rounded for the answer (as transformers' classification pipelines
answer with `top_k=None`). `Labels` is that half of a task, shared by the text and the image
classifier: they differ only in what they read."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from appliance.settings import Settings
from appliance.tasks.contract import Field, PredictInput, Prediction, output_tensors
from appliance.tasks.scoring import label_scores

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


class Labels:
    """The answering half of a classification task: outputs, warnings (none), the answer, OIP
    tensors, the capture row (the label as its summary) and the held-out scores."""

    outputs: tuple[Field, ...] = OUTPUTS
    gate_metric = "accuracy"

    def warnings(self, item: PredictInput, prediction: Prediction, settings: Settings) -> list[str]:
        return []

    def answer(self, prediction: Prediction) -> dict[str, Any]:
        return answer(prediction)

    def tensors(self, predictions: Sequence[Prediction]) -> list[dict[str, Any]]:
        return output_tensors(self.outputs, predictions)

    def capture(self, item: PredictInput, prediction: Prediction | None) -> dict[str, Any]:
        # The input itself is not kept (a text may hold a seller's details): only its features.
        return {"keywords": None, "description": prediction.output["label"] if prediction else None}

    def score(
        self, predictions: Sequence[Prediction], rows: Sequence[Mapping[str, Any]]
    ) -> dict[str, float]:
        predicted = [str(p.output["label"]) for p in predictions]
        return label_scores(predicted, [str(row.get("label", "")) for row in rows])
