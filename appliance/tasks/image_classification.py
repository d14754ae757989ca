"""`image-classification`: a product photo in, its category and every category's score out
(ViT, ConvNeXt, ResNet and any `*ForImageClassification` folder). The predictor answers
`predict(images) -> [(label, scores)]`. Inputs are read and measured as image-to-text reads
them (the same formats, limits and image features), without keywords."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from appliance.errors import InvalidInput
from appliance.settings import Settings
from appliance.tasks import labels
from appliance.tasks.contract import Field, PredictInput, Prediction, RawInput
from appliance.tasks.image_features import image_features
from appliance.tasks.image_to_text import ImageToText
from appliance.tasks.images import decode_image


class ImageClassification(labels.Labels, ImageToText):
    name = "image-classification"
    inputs = (Field("image", "BYTES", "The photo: PNG, JPEG, WebP, GIF, BMP or TIFF.", True, True),)
    hint = (
        "send multipart/form-data with an 'image' file, an image/* body, or JSON "
        '{"image": "<base64>"} (batch: {"instances": [...]})'
    )

    def from_json(self, item: Any, where: str) -> RawInput:
        raw = super().from_json(item, where)
        return {"image": raw["image"], "keywords": None}

    def decode(self, raw: RawInput, settings: Settings) -> PredictInput:
        if raw.get("keywords"):
            raise InvalidInput("an image classifier takes no keywords: send the image alone")
        image = decode_image(
            raw["image"],
            settings.max_image_pixels,
            max_side=settings.image_max_side,
            memory_mb=settings.decode_memory_mb,
        )
        return PredictInput({"image": image}, image_features(image))

    def predict(self, predictor: Any, inputs: Sequence[PredictInput]) -> list[Prediction]:
        return labels.predictions(predictor.predict([i.values["image"] for i in inputs]))

    def words(self, values: Mapping[str, Any]) -> str:
        return ""

    def example(self, folder: Path, row: Mapping[str, Any]) -> PredictInput:
        with Image.open(folder / row["file_name"]) as opened:
            image = opened.convert("RGB")
        return PredictInput({"image": image}, image_features(image))

    def warmup(self) -> PredictInput:
        image = super().warmup().values["image"]
        return PredictInput({"image": image}, image_features(image))
