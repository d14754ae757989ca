"""`text-classification`: a text (an ad, with its title if there is one) in, a label and the
score of every label out. The recipe's predictor answers `predict(texts) -> [(label, scores)]`;
a text with a title reads "title\\ntext", as the text-classifier recipe trains on."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from appliance.errors import InvalidInput
from appliance.settings import Settings
from appliance.tasks import labels
from appliance.tasks.contract import (
    Field,
    PredictInput,
    Prediction,
    RawInput,
)  # fmt: skip

MAX_TEXT_CHARS = 20_000
"""Longer than any ad; a model reads its first few hundred tokens anyway."""
MAX_TITLE_CHARS = 500


TEXT_SHIFTS = ("typos", "dropped", "unknown")
"""The synthetic shifts of a text that calibration measures a version on (`shift_text`)."""


def shift_text(text: str, kind: str, seed: int) -> str:
    """`text` written less carefully, the same for the same `seed`: `typos` (two letters swapped
    in a third of its words), `dropped` (a third of its words left out) or `unknown` (a made-up
    word after every third one)."""
    rng = random.Random(seed)
    words = text.split()
    if kind == "typos":
        for i, word in enumerate(words):
            if len(word) > 3 and rng.random() < 1 / 3:
                j = rng.randrange(len(word) - 1)
                words[i] = word[:j] + word[j + 1] + word[j] + word[j + 2 :]
    elif kind == "dropped":
        kept = [w for w in words if rng.random() >= 1 / 3]
        words = kept or words[:1]
    elif kind == "unknown":
        made_up = ["".join(rng.choice("bcdfgkmpqvxz") for _ in range(6)) for _ in words]
        words = [w for i, pair in enumerate(zip(words, made_up, strict=True))
                 for w in (pair if i % 3 == 2 else pair[:1])]  # fmt: skip
    else:
        raise ValueError(f"unknown shift '{kind}' (known: {', '.join(TEXT_SHIFTS)})")
    return " ".join(words)


class TextClassification(labels.Labels):
    name = "text-classification"
    noun = "text"
    inputs = (
        Field("text", "BYTES", "The text to classify (UTF-8).", True),
        Field("title", "BYTES", "Optional title, read before the text."),
    )
    features = ("chars", "words", "mean_word_chars", "digit_share", "upper_share")
    hint = (
        'send JSON {"text": "...", "title": "..."} (batch: {"instances": [...]}), a text/plain '
        "body, or multipart/form-data with a 'text' field"
    )

    def accepts_raw(self, content_type: str) -> bool:
        return content_type == "text/plain"

    def from_raw(self, body: bytes, query: Mapping[str, str]) -> RawInput:
        return {"text": _utf8(body, "the body"), "title": query.get("title")}

    def from_json(self, item: Any, where: str) -> RawInput:
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            raise InvalidInput(f"{where} needs a 'text' field holding a string")
        title = item.get("title")
        if title is not None and not isinstance(title, str):
            raise InvalidInput(f"{where}: 'title' must be a string")
        return {"text": item["text"], "title": title}

    def from_form(self, form: Mapping[str, list[bytes | str]]) -> list[RawInput]:
        texts = [
            _utf8(t, "the 'text' field") if isinstance(t, bytes) else t
            for t in form.get("text", [])
        ]
        title = next((t for t in form.get("title", []) if isinstance(t, str)), None)
        return [{"text": text, "title": title} for text in texts]

    def from_tensors(self, tensors: Mapping[str, list[bytes]]) -> list[RawInput]:
        texts = tensors.get("text")
        if not texts:
            raise InvalidInput("infer needs a BYTES input named 'text' holding UTF-8 texts")
        titles = tensors.get("title") or []
        return [
            {"text": _utf8(data, "input 'text'"),
             "title": _utf8(titles[i], "input 'title'") if i < len(titles) else None}
            for i, data in enumerate(texts)
        ]  # fmt: skip

    def decode(self, raw: RawInput, settings: Settings) -> PredictInput:
        text = _clean(raw["text"], "text", MAX_TEXT_CHARS)
        if not text:
            raise InvalidInput("the text is empty: send the ad's words in 'text'")
        title = _clean(raw.get("title") or "", "title", MAX_TITLE_CHARS) or None
        return PredictInput({"text": text, "title": title}, text_features(text))

    def predict(self, predictor: Any, inputs: Sequence[PredictInput]) -> list[Prediction]:
        texts = [_read(i.values["text"], i.values.get("title")) for i in inputs]
        return labels.predictions(predictor.predict(texts))

    def thumbnail(self, item: PredictInput) -> Any:
        return None

    def row_features(self, folder: Path, row: Mapping[str, Any]) -> dict[str, float]:
        return text_features(str(row.get("text", "")).strip())

    def words(self, values: Mapping[str, Any]) -> str:
        return _read(str(values.get("text") or ""), values.get("title") or None)

    def example(self, folder: Path, row: Mapping[str, Any]) -> PredictInput:
        text = _clean(str(row.get("text", "")), "text", MAX_TEXT_CHARS)
        title = _clean(str(row.get("title") or ""), "title", MAX_TITLE_CHARS) or None
        return PredictInput({"text": text, "title": title}, text_features(text))

    def warmup(self) -> PredictInput:
        text = "Red striped mug, barely used. Pickup only."
        return PredictInput({"text": text, "title": None}, text_features(text))

    shifts = TEXT_SHIFTS

    def shift(self, item: PredictInput, kind: str, seed: int) -> PredictInput:
        text = shift_text(str(item.values["text"]), kind, seed)
        return PredictInput({**item.values, "text": text}, text_features(text))


def text_features(text: str) -> dict[str, float]:
    """Cheap features of a text for capture and drift: its size, and how much of it is digits
    or capitals (prices, shouting, a new kind of ad)."""
    words = text.split()
    letters = [c for c in text if c.isalpha()]
    return {
        "chars": float(len(text)),
        "words": float(len(words)),
        "mean_word_chars": round(sum(map(len, words)) / len(words), 2) if words else 0.0,
        "digit_share": round(sum(c.isdigit() for c in text) / len(text), 4),
        "upper_share": round(sum(c.isupper() for c in letters) / len(letters), 4)
        if letters
        else 0.0,
    }


def _read(text: str, title: str | None) -> str:
    return f"{title}\n{text}" if title else text


def _utf8(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"{where} is not UTF-8 text") from None


def _clean(text: str, what: str, limit: int) -> str:
    if "\x00" in text:
        raise InvalidInput(f"the {what} holds a NUL character; send plain text")
    if len(text) > limit:
        raise InvalidInput(f"the {what} is {len(text):,} characters, over the {limit:,} limit")
    return text.strip()
