"""`image-text-to-text`: a prompted vision-language model (LLaVA, Idefics3/SmolVLM) describing a
product photo. It takes and answers what image-to-text does (a photo and optional seller
keywords in, a description out); the runtime puts the keywords into the model's prompt through
its chat template rather than into a captioner's decoder."""

from __future__ import annotations

from appliance.tasks.contract import Field
from appliance.tasks.image_to_text import ImageToText


class ImageTextToText(ImageToText):
    name = "image-text-to-text"
    inputs = (
        Field("image", "BYTES", "The photo: PNG, JPEG, WebP, GIF, BMP or TIFF.", True, True),
        Field("keywords", "BYTES", "Optional seller keywords, put into the model's prompt."),
    )
