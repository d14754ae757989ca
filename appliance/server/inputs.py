"""Reading predict requests in their three forms (multipart upload, raw image bytes, base64 in
JSON), single or batched, into decoded images. Decoding runs off the event loop."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from litestar import Request
from litestar.datastructures import UploadFile

from appliance.errors import ApplianceError, InvalidInput, UnsupportedMedia
from appliance.serving.images import decode_image, image_features
from appliance.serving.runtime import PredictInput
from appliance.serving.service import Serving

AnyRequest = Request[Any, Any, Any]

MAX_BATCH = 64
FORMS_HINT = (
    "send multipart/form-data with an 'image' file, an image/* body, or JSON "
    '{"image": "<base64>", "keywords": "..."} (batch: {"instances": [...]})'
)


@dataclass(frozen=True)
class PredictRequest:
    inputs: list[PredictInput]
    batch: bool


async def read_predict_request(
    request: AnyRequest, max_pixels: int, serving: Serving
) -> PredictRequest:
    content_type, _ = request.content_type
    if content_type == "multipart/form-data":
        raw, batch = await _from_multipart(request)
    elif content_type.startswith("image/") or content_type == "application/octet-stream":
        raw, batch = [(await request.body(), request.query_params.get("keywords"))], False
    elif content_type == "application/json":
        raw, batch = _from_json(await request.body())
    else:
        raise UnsupportedMedia(
            f"content type '{content_type or 'none'}' is not accepted: {FORMS_HINT}"
        )
    if not raw:
        raise InvalidInput(f"no image in the request: {FORMS_HINT}")
    if len(raw) > MAX_BATCH:
        raise InvalidInput(f"a batch holds at most {MAX_BATCH} images, got {len(raw)}")
    inputs = await serving.off_loop(_decode_all, raw, max_pixels)
    return PredictRequest(inputs, batch)


def _decode_all(raw: list[tuple[bytes, str | None]], max_pixels: int) -> list[PredictInput]:
    decoded = []
    for index, (data, keywords) in enumerate(raw):
        try:
            image = decode_image(data, max_pixels)
            decoded.append(PredictInput(image, _clean(keywords), image_features(image)))
        except ApplianceError as exc:  # 413, 415 and 422 too, not only 400
            raise type(exc)(f"image {index}: {exc}") if len(raw) > 1 else exc from None
    return decoded


async def _from_multipart(
    request: AnyRequest,
) -> tuple[list[tuple[bytes, str | None]], bool]:
    form = await request.form()
    files = (
        [f for f in form.getall("image") if isinstance(f, UploadFile)] if "image" in form else []
    )
    keywords = form.get("keywords")
    keyword_text = keywords if isinstance(keywords, str) else None
    raw = [(await f.read(), keyword_text) for f in files]
    return raw, len(raw) > 1


def _from_json(body: bytes) -> tuple[list[tuple[bytes, str | None]], bool]:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # deep nesting recurses
        raise InvalidInput(f"the body is not valid JSON ({exc})") from None
    if not isinstance(payload, dict):
        raise InvalidInput(f"the JSON body must be an object: {FORMS_HINT}")
    if "instances" in payload:
        instances = payload["instances"]
        if not isinstance(instances, list):
            raise InvalidInput('\'instances\' must be a list of {"image": "<base64>"} objects')
        return [_instance(item, f"instances[{i}]") for i, item in enumerate(instances)], True
    return [_instance(payload, "the body")], False


def _instance(item: Any, where: str) -> tuple[bytes, str | None]:
    if not isinstance(item, dict) or not isinstance(item.get("image"), str):
        raise InvalidInput(f"{where} needs an 'image' field holding base64-encoded image bytes")
    keywords = item.get("keywords")
    if keywords is not None and not isinstance(keywords, str):
        raise InvalidInput(f"{where}: 'keywords' must be a string")
    return decode_base64(item["image"], where), keywords


def decode_base64(text: str, where: str) -> bytes:
    if text.startswith("data:") and "," in text:  # a data URL: data:image/png;base64,....
        text = text.split(",", 1)[1]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"{where}: 'image' is not valid base64") from None


def _clean(keywords: str | None) -> str | None:
    if keywords is None:
        return None
    text = " ".join(keywords.replace(",", " ").split())
    if len(text) > 200:
        raise InvalidInput("keywords are limited to 200 characters")
    return text or None
