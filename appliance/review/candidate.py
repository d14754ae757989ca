"""What the review queue keeps of one served answer: its decoded input (a photo, or a text), the
task's other input fields, and the answer, taken from the capture record by reference. Only a
kept one is encoded: a photo as a PNG re-encoded from its pixels (no EXIF, GPS, ICC profile or
file name of the upload survives), at most `MAX_SIDE` pixels on its longest side."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

from PIL import Image

from appliance.serving.observer import CaptureRecord

MAX_SIDE = 1024
"""A kept photo larger than this is shrunk to it: enough to review and to train on, and a
40-megapixel upload never costs the capture thread seconds of PNG encoding."""


@dataclass(frozen=True)
class Candidate:
    prediction_id: str
    workspace: str
    endpoint: str
    model_version_id: str | None
    kind: str
    """'image' or 'text'."""
    image: Image.Image | None
    text: str | None
    fields: dict[str, str]
    """The input's other non-empty text fields (a photo's keywords, a text's title)."""
    answer: str | None
    answer_field: str
    """What a dataset row names the answer: 'text' (a description) or 'label'."""
    confidence: float | None
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, record: CaptureRecord) -> Candidate | None:
        """The record's input and answer, or None when it has none to review (a failed
        prediction, an input that is neither a photo nor a text)."""
        values, output = record.values, record.output or {}
        if record.error is not None or not values:
            return None
        image, text = values.get("image"), values.get("text")
        if isinstance(image, Image.Image):
            kind, main = "image", "image"
        elif isinstance(text, str) and text.strip():
            kind, main, image = "text", "text", None
        else:
            return None
        labelled = "label" in output
        answer = output.get("label") if labelled else output.get("description", record.description)
        return cls(
            prediction_id=record.id,
            workspace=record.workspace,
            endpoint=record.endpoint,
            model_version_id=record.model_version_id,
            kind=kind,
            image=image,
            text=text if kind == "text" else None,
            fields={
                k: v for k, v in values.items() if k != main and isinstance(v, str) and v.strip()
            },
            answer=None if answer is None else str(answer),
            answer_field="label" if labelled else "text",
            confidence=record.confidence,
            warnings=list(record.warnings),
        )

    @property
    def size(self) -> int:
        """Roughly what holding it costs in memory: its pixels, or its text."""
        if self.image is not None:
            return self.image.width * self.image.height * len(self.image.getbands())
        return len(self.text or "")


def png(image: Image.Image) -> bytes:
    """`image` as a PNG of its pixels alone: rebuilt from raw RGB bytes, so no metadata of the
    upload (EXIF, ICC profile, text chunks) can reach the file."""
    rgb = image.convert("RGB")
    if max(rgb.size) > MAX_SIDE:
        rgb = rgb.copy()
        rgb.thumbnail((MAX_SIDE, MAX_SIDE))
    clean = Image.frombytes("RGB", rgb.size, rgb.tobytes())
    out = io.BytesIO()
    clean.save(out, format="PNG")
    return out.getvalue()
