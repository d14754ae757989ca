"""What a classifier answers, whatever it reads: the best label and every label's score, the
scores ranked best first and rounded for the answer (as transformers' classification pipelines
answer with `top_k=None`). `Labels` is that half of a task, shared by the text and the image
classifier: they differ only in what they read."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from appliance.settings import Settings
from appliance.tasks.contract import (
    Field,
    PredictInput,
    Prediction,
    answer_extras,
    is_uncertain,
    output_tensors,
)  # fmt: skip
from appliance.tasks.scoring import label_scores
from appliance.trust.signals import label_signals

OUTPUTS = (
    Field("label", "BYTES", "The most likely label."),
    Field("confidence", "FP32", "Its score."),
)


def predictions(answers: Sequence[Sequence[Any]]) -> list[Prediction]:
    """A predictor's `(label, scores)` pairs (or `(label, scores, extras)`, `answer_extras`) as
    Predictions, the label's score the confidence, the scores' signals (`trust.signals`)."""
    made = []
    for answer in answers:
        label, scores = answer[0], {str(k): float(v) for k, v in answer[1].items()}
        _, embedding = answer_extras(answer)
        made.append(
            Prediction({"label": label, "scores": scores}, scores.get(label, 0.0),
                       signals=label_signals(scores), embedding=embedding)
        )  # fmt: skip
    return made


def answer(prediction: Prediction) -> dict[str, Any]:
    scores = prediction.output["scores"]
    ranked = dict(sorted(scores.items(), key=lambda kv: -kv[1]))
    return {
        "label": prediction.output["label"],
        "scores": {k: round(v, 4) for k, v in ranked.items()},
    }


class Labels:
    """The answering half of a classification task: outputs, warnings (`uncertain`), the
    answer, OIP tensors, the capture row (the label as its summary), whether an answer is
    correct and the held-out scores."""

    outputs: tuple[Field, ...] = OUTPUTS
    gate_metric = "accuracy"

    def warnings(self, item: PredictInput, prediction: Prediction, settings: Settings) -> list[str]:
        return ["uncertain"] if is_uncertain(prediction, settings) else []

    def correct(self, prediction: Prediction, row: Mapping[str, Any]) -> bool:
        return str(prediction.output["label"]) == str(row.get("label", ""))

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
