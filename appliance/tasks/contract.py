"""The task contract: what a kind of model takes and answers, so that the server, serving and
monitoring handle any task without knowing its content (after MLServer's codecs and LitServe's
`decode_request` / `predict` / `encode_response`). A task works on plain bytes and dicts, never on
Litestar types.

A request goes: the server reads the body into one raw item per input (`from_raw`, `from_json`,
`from_form`, `from_tensors`), `decode` turns each into a PredictInput with its cheap features off
the event loop, `predict` runs the recipe's predictor on a batch, and `answer`, `tensors`,
`warnings` and `capture` encode each Prediction for the predict answer, OIP v2 and monitoring.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from appliance.errors import InvalidInput
from appliance.settings import Settings

RawInput = dict[str, Any]
"""One request item's fields as sent (bytes or str), not yet decoded."""


@dataclass(frozen=True)
class Field:
    """One named input or output, as OIP v2 metadata describes it."""

    name: str
    datatype: str  # OIP v2: BYTES, FP32, INT64
    help: str
    required: bool = False
    binary: bool = False
    """Bytes that JSON carries as base64 (an image); otherwise UTF-8 text."""


@dataclass(frozen=True)
class PredictInput:
    values: dict[str, Any]
    """The decoded fields (an RGB image and optional keywords; a text)."""
    features: dict[str, float] = field(default_factory=dict)
    """Cheap numeric input features, computed where the input is decoded (capture, drift)."""


@dataclass(frozen=True)
class Prediction:
    output: dict[str, Any]
    """The task's answer fields (a description; a label and its scores)."""
    confidence: float
    """The model's own score until the version's calibrator (appliance/trust/) turns it into
    the chance that the answer is right."""
    signals: dict[str, float] = field(default_factory=dict)
    """Raw scores of the answer, each higher when the model is surer (`trust.signals`): what a
    calibrator is fitted on. Empty for a predictor that gives only its confidence."""
    embedding: Any = None
    """The model's own view of the input (a float vector: the encoder's pooled output), for
    the distance from the training data and embedding drift; None when the predictor gives none."""
    uncertain: bool | None = None
    """Set by the version's calibration: its confidence is below the version's `uncertain`
    threshold. None where no calibration says (a task then falls back to a settings threshold)."""
    unfamiliar: bool | None = None
    """Set by the version's calibration: the input is farther from the training rows than 99%
    of the held-out rows (its embedding's distance). None where that was not measured."""


class Task(Protocol):
    name: str
    inputs: tuple[Field, ...]
    outputs: tuple[Field, ...]
    """What `tensors` answers in OIP v2, confidence included."""
    features: tuple[str, ...]
    """The names of the numeric features `decode` computes."""
    hint: str
    """How to send a predict request, for the error that says what to fix."""
    noun: str
    """What one input is called in errors ("image 2: ...")."""

    def accepts_raw(self, content_type: str) -> bool:
        """Whether a body of this content type is one raw input (e.g. `image/*`)."""
        ...

    def from_raw(self, body: bytes, query: Mapping[str, str]) -> RawInput: ...

    def from_json(self, item: Any, where: str) -> RawInput:
        """One JSON object of a request (`where` names it in errors)."""
        ...

    def from_form(self, form: Mapping[str, list[bytes | str]]) -> list[RawInput]:
        """A multipart form: each field's values, files as bytes."""
        ...

    def from_tensors(self, tensors: Mapping[str, list[bytes]]) -> list[RawInput]:
        """OIP v2 BYTES inputs by name, each element as bytes (binary fields decoded)."""
        ...

    def decode(self, raw: RawInput, settings: Settings) -> PredictInput:
        """Validate and decode one input with the limits that apply; raises ApplianceError
        (4xx) with what to fix. Runs off the event loop."""
        ...

    def predict(self, predictor: Any, inputs: Sequence[PredictInput]) -> list[Prediction]:
        """Run the recipe's loaded predictor on a batch (on the model instance's thread)."""
        ...

    def warnings(
        self, item: PredictInput, prediction: Prediction, settings: Settings
    ) -> list[str]: ...

    def answer(self, prediction: Prediction) -> dict[str, Any]:
        """The task's fields of the predict answer."""
        ...

    def tensors(self, predictions: Sequence[Prediction]) -> list[dict[str, Any]]:
        """The OIP v2 output tensors for a batch."""
        ...

    def capture(self, item: PredictInput, prediction: Prediction | None) -> dict[str, Any]:
        """The capture row's task columns for one prediction (its input text fields and the
        answer's summary); `prediction` is None for a failed one."""
        ...

    def thumbnail(self, item: PredictInput) -> Any:
        """The input to keep a small thumbnail of, if the task has one (else None)."""
        ...

    def row_features(self, folder: Path, row: Mapping[str, Any]) -> dict[str, float]:
        """The features of one training row of a dataset version laid out in `folder`, as
        `decode` computes them for a live input (the reference drift compares with)."""
        ...

    def words(self, values: Mapping[str, Any]) -> str:
        """The text whose words drift watches, from a live input's decoded `values` or a
        training row's fields alike (a text and its title; an image's seller keywords); "" when
        the input has none. A version's profile keeps its training rows' commonest words, and
        each capture gets `oov_rate` and `new_words` against them (`drift.WORD_FEATURES`) when
        both sides have words: a task whose inputs never have any gets no such features."""
        ...

    def warmup(self) -> PredictInput:
        """An input for the one forward pass before a model takes traffic."""
        ...

    # -- trust: calibration and the uncertain warning (appliance/trust/) ---------------------

    shifts: tuple[str, ...]
    """The synthetic shifts `shift` knows (for photos: dark, blur, noise, faded), applied to
    held-out rows so that calibration sees inputs unlike the training data."""

    def shift(self, item: PredictInput, kind: str, seed: int) -> PredictInput:
        """`item` changed by the synthetic shift `kind`, deterministically for `seed`; its
        answer stays the row's own (a dark photo of a red mug is still a red mug)."""
        ...

    def correct(self, prediction: Prediction, row: Mapping[str, Any]) -> bool:
        """Whether `prediction` is the row's own answer (the gate metric's unit: an exact
        description, the right label)."""
        ...

    # -- evaluation, where no recipe evaluates (a folder served by the Hugging Face runtime) --

    gate_metric: str
    """The held-out score a promotion gates on (higher is better)."""

    def example(self, folder: Path, row: Mapping[str, Any]) -> PredictInput:
        """A dataset row laid out in `folder` as the live input it stands for."""
        ...

    def score(
        self, predictions: Sequence[Prediction], rows: Sequence[Mapping[str, Any]]
    ) -> dict[str, float]:
        """Held-out scores of `predictions` against the rows' own answers."""
        ...


def decode_base64(text: str, what: str) -> bytes:
    """Bytes a JSON body carries as base64 (or a `data:` URL); `what` names them in the error."""
    if text.startswith("data:") and "," in text:  # a data URL: data:image/png;base64,....
        text = text.split(",", 1)[1]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"{what} is not valid base64") from None


def answer_extras(answer: Sequence[Any]) -> tuple[dict[str, float], Any]:
    """The optional third item of a predictor's answer tuple, `{"signals": {...}, "embedding":
    [...]}`, as (signals, embedding); a two-item answer (text or label, score) has neither."""
    extras = answer[2] if len(answer) > 2 else None
    if not isinstance(extras, Mapping):
        return {}, None
    signals = {str(k): float(v) for k, v in (extras.get("signals") or {}).items()}
    return signals, extras.get("embedding")


def is_uncertain(prediction: Prediction, settings: Settings) -> bool:
    """Whether the answer warns `uncertain`: below the settings' override when one is set, else
    by the version's own threshold (its calibration sets `uncertain`), else, for a version
    without calibration, below `low_light_confidence`."""
    if settings.uncertain_confidence > 0:
        return prediction.confidence < settings.uncertain_confidence
    if prediction.uncertain is not None:
        return prediction.uncertain
    return prediction.confidence < settings.low_light_confidence


REASONS = {
    "uncertain": "The model is unsure of this answer (a {chance:.0%} chance that it is right): "
    "check it before using it.",
    "low_light": "The photo is dark: one taken in better light gets a more reliable description.",
}
"""What each warning tells the person behind the request (`reasons`), for an app to show."""


def reasons(warnings: Sequence[str], prediction: Prediction) -> dict[str, str]:
    """Each warning's reason (`REASONS`), the uncertain one with the answer's chance of being
    right; a warning without a reason of its own is left out."""
    return {w: REASONS[w].format(chance=prediction.confidence) for w in warnings if w in REASONS}


def output_tensors(
    outputs: Sequence[Field], predictions: Sequence[Prediction]
) -> list[dict[str, Any]]:
    """OIP v2 output tensors for a batch, one per declared output Field: `confidence` from each
    prediction's confidence, the others from its output fields."""
    n = len(predictions)
    return [
        {"name": f.name, "datatype": f.datatype, "shape": [n],
         "data": [round(p.confidence, 4) if f.name == "confidence" else p.output[f.name]
                  for p in predictions]}
        for f in outputs
    ]  # fmt: skip
