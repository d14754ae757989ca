"""`image-to-text`: a product photo (and optional seller keywords) in, a description out. The
recipe's predictor answers `predict(images, keywords) -> [(text, confidence)]`, each optionally
with a third item of extras (`answer_extras`: the signals and embedding trust uses). An
uncertain answer warns `uncertain`, and `low_light` too when the photo is dark."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from appliance.errors import InvalidInput
from appliance.settings import Settings
from appliance.tasks.contract import (
    Field,
    PredictInput,
    Prediction,
    RawInput,
    answer_extras,
    decode_base64,
    is_uncertain,
    output_tensors,
)  # fmt: skip
from appliance.tasks.image_features import SHIFTS, image_features, shift_image
from appliance.tasks.images import decode_image
from appliance.tasks.keywords import (
    MAX_KEYWORDS_CHARS,
    adherence,
    keywords_text,
    prompt_words,
)
from appliance.tasks.scoring import text_scores

WARMUP_SIZE = 64


class ImageToText:
    name = "image-to-text"
    inputs: tuple[Field, ...] = (
        Field("image", "BYTES", "The photo: PNG, JPEG, WebP, GIF, BMP or TIFF.", True, True),
        Field("keywords", "BYTES", "Optional seller keywords to condition the description."),
    )
    outputs: tuple[Field, ...] = (
        Field("description", "BYTES", "The generated description."),
        Field("confidence", "FP32", "The model's confidence in it."),
    )
    features = ("width", "height", "brightness", "brightness_p99", "contrast", "sharpness")
    noun = "image"
    gate_metric = "exact_match"
    hint = (
        "send multipart/form-data with an 'image' file, an image/* body, or JSON "
        '{"image": "<base64>", "keywords": "..."} (batch: {"instances": [...]})'
    )

    def accepts_raw(self, content_type: str) -> bool:
        return content_type.startswith("image/") or content_type == "application/octet-stream"

    def from_raw(self, body: bytes, query: Mapping[str, str]) -> RawInput:
        return {"image": body, "keywords": query.get("keywords")}

    def from_json(self, item: Any, where: str) -> RawInput:
        if not isinstance(item, dict) or not isinstance(item.get("image"), str):
            raise InvalidInput(f"{where} needs an 'image' field holding base64-encoded image bytes")
        keywords = item.get("keywords")
        if keywords is not None and not isinstance(keywords, str):
            raise InvalidInput(f"{where}: 'keywords' must be a string")
        return {"image": decode_base64(item["image"], f"{where}: 'image'"), "keywords": keywords}

    def from_form(self, form: Mapping[str, list[bytes | str]]) -> list[RawInput]:
        files = [f for f in form.get("image", []) if isinstance(f, bytes)]
        keywords = next((k for k in form.get("keywords", []) if isinstance(k, str)), None)
        return [{"image": data, "keywords": keywords} for data in files]

    def from_tensors(self, tensors: Mapping[str, list[bytes]]) -> list[RawInput]:
        images = tensors.get("image")
        if not images:
            raise InvalidInput("infer needs a BYTES input named 'image' holding encoded images")
        keywords = tensors.get("keywords") or []
        return [
            {"image": data, "keywords": _utf8(keywords[i]) if i < len(keywords) else None}
            for i, data in enumerate(images)
        ]

    def decode(self, raw: RawInput, settings: Settings) -> PredictInput:
        image = decode_image(
            raw["image"],
            settings.max_image_pixels,
            max_side=settings.image_max_side,
            memory_mb=settings.decode_memory_mb,
        )
        keywords = _clean(raw.get("keywords"))
        return PredictInput({"image": image, "keywords": keywords}, image_features(image))

    def predict(self, predictor: Any, inputs: Sequence[PredictInput]) -> list[Prediction]:
        images = [i.values["image"] for i in inputs]
        keywords = [i.values.get("keywords") for i in inputs]
        made = []
        for answer in predictor.predict(images, keywords):
            signals, embedding = answer_extras(answer)
            made.append(
                Prediction({"description": answer[0]}, float(answer[1]), signals, embedding)
            )
        return made

    def warnings(self, item: PredictInput, prediction: Prediction, settings: Settings) -> list[str]:
        if not is_uncertain(prediction, settings):
            return []
        dark = item.features["brightness_p99"] < settings.low_light_brightness
        return ["uncertain", "low_light"] if dark else ["uncertain"]

    def answer(self, prediction: Prediction) -> dict[str, Any]:
        return {"description": prediction.output["description"]}

    def tensors(self, predictions: Sequence[Prediction]) -> list[dict[str, Any]]:
        return output_tensors(self.outputs, predictions)

    def capture(self, item: PredictInput, prediction: Prediction | None) -> dict[str, Any]:
        text = prediction.output["description"] if prediction is not None else None
        return {"keywords": item.values.get("keywords"), "description": text}

    def thumbnail(self, item: PredictInput) -> Any:
        return item.values.get("image")

    def row_features(self, folder: Path, row: Mapping[str, Any]) -> dict[str, float]:
        with Image.open(folder / row["file_name"]) as image:
            return image_features(image.convert("RGB"))

    def words(self, values: Mapping[str, Any]) -> str:
        # The seller's keywords, the only words an input has (a row's `text` is the answer).
        return prompt_words(_given(values))

    def example(self, folder: Path, row: Mapping[str, Any]) -> PredictInput:
        with Image.open(folder / row["file_name"]) as opened:
            image = opened.convert("RGB")
        keywords = _clean(_given(row) or None)
        return PredictInput({"image": image, "keywords": keywords}, image_features(image))

    def score(
        self, predictions: Sequence[Prediction], rows: Sequence[Mapping[str, Any]]
    ) -> dict[str, float]:
        described = [str(p.output["description"]) for p in predictions]
        references = [str(row.get("text", "")) for row in rows]
        scores = text_scores(described, references)
        keywords = [_given(row) or None for row in rows]
        if (kept := adherence(described, keywords, references).share) is not None:
            scores["keyword_adherence"] = kept  # only where rows give keywords
        return scores

    def warmup(self) -> PredictInput:
        image = Image.new("RGB", (WARMUP_SIZE, WARMUP_SIZE), "white")
        return PredictInput({"image": image, "keywords": None}, image_features(image))

    shifts = SHIFTS

    def shift(self, item: PredictInput, kind: str, seed: int) -> PredictInput:
        image = shift_image(item.values["image"], kind, seed)
        return PredictInput({**item.values, "image": image}, image_features(image))

    def correct(self, prediction: Prediction, row: Mapping[str, Any]) -> bool:
        return str(prediction.output["description"]) == str(row.get("text", ""))


def _given(values: Mapping[str, Any]) -> str:
    """The keywords of a decoded input or a dataset row (a list there) as one field's text."""
    keywords = values.get("keywords")
    if isinstance(keywords, list | tuple):
        return keywords_text([str(k) for k in keywords])
    return keywords if isinstance(keywords, str) else ""


def _utf8(data: bytes) -> str | None:
    try:
        return data.decode() or None
    except UnicodeDecodeError:
        raise InvalidInput("input 'keywords' must be UTF-8 text") from None


def _clean(keywords: str | None) -> str | None:
    """The seller's keyword phrases, comma-separated ("vintage, size 42"; a lone phrase of
    several words keeps a trailing comma: "size 42,"), or None."""
    if keywords is None:
        return None
    if len(keywords) > MAX_KEYWORDS_CHARS:
        raise InvalidInput(f"keywords are limited to {MAX_KEYWORDS_CHARS} characters")
    return keywords_text(keywords) or None
