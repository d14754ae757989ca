"""Reading predict requests in their three forms (multipart upload, a raw body, JSON), single or
batched (`{"instances": [...]}`), into the endpoint's task inputs. The task says which fields
each form carries; decoding runs off the event loop."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from litestar import Request
from litestar.datastructures import UploadFile
from litestar.exceptions import ClientException

from appliance.errors import ApplianceError, InvalidInput, TooLarge, UnsupportedMedia
from appliance.settings import Settings
from appliance.tasks import PredictInput, RawInput, Task

AnyRequest = Request[Any, Any, Any]

MAX_BATCH = 64
MAX_FORM_PARTS = 4 * MAX_BATCH
"""Parts of one multipart form: each input's file and its fields (keywords), with room to spare;
a form with more is refused (413) before it is parsed further."""


@dataclass(frozen=True)
class PredictRequest:
    inputs: list[PredictInput]
    batch: bool


async def read_predict_request(
    request: AnyRequest, task: Task, settings: Settings, off_loop: Any
) -> PredictRequest:
    """`off_loop(work, *args)` runs the decoding on a decode thread (Serving.off_loop)."""
    content_type, _ = request.content_type
    if content_type == "multipart/form-data":
        raw = task.from_form(await _form(request))
        batch = len(raw) > 1
    elif task.accepts_raw(content_type):
        raw, batch = [task.from_raw(await request.body(), request.query_params)], False
    elif content_type == "application/json":
        raw, batch = _from_json(await request.body(), task)
    else:
        raise UnsupportedMedia(
            f"content type '{content_type or 'none'}' is not accepted: {task.hint}"
        )
    if not raw:
        raise InvalidInput(f"no {task.noun} in the request: {task.hint}")
    if len(raw) > MAX_BATCH:
        raise InvalidInput(f"a batch holds at most {MAX_BATCH} {task.noun}s, got {len(raw)}")
    inputs = await off_loop(decode_all, task, raw, settings)
    return PredictRequest(inputs, batch)


def decode_all(task: Task, raw: list[RawInput], settings: Settings) -> list[PredictInput]:
    decoded = []
    for index, item in enumerate(raw):
        try:
            decoded.append(task.decode(item, settings))
        except ApplianceError as exc:  # 413, 415 and 422 too, not only 400
            raise type(exc)(f"{task.noun} {index}: {exc}") if len(raw) > 1 else exc from None
    return decoded


async def _form(request: AnyRequest) -> dict[str, list[bytes | str]]:
    """The multipart form as plain values: each field's strings, files read as bytes."""
    try:
        form = await request.form()
    except ClientException as exc:
        # The part limit is a 400 with this text; the body limit is a real 413 (RequestEntity
        # TooLarge, with the same text), answered as such by the app.
        if exc.status_code != 400 or exc.detail != "Request Entity Too Large":
            raise
        raise TooLarge(
            f"the form has more than {MAX_FORM_PARTS} parts: send at most {MAX_BATCH} inputs "
            f"in one request"
        ) from None
    fields: dict[str, list[bytes | str]] = {}
    for name in form:
        for value in form.getall(name):
            data = await value.read() if isinstance(value, UploadFile) else value
            fields.setdefault(name, []).append(data)
    return fields


def _from_json(body: bytes, task: Task) -> tuple[list[RawInput], bool]:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # deep nesting recurses
        raise InvalidInput(f"the body is not valid JSON ({exc})") from None
    if not isinstance(payload, dict):
        raise InvalidInput(f"the JSON body must be an object: {task.hint}")
    if "instances" in payload:
        instances = payload["instances"]
        if not isinstance(instances, list):
            raise InvalidInput(f"'instances' must be a list of input objects: {task.hint}")
        return [task.from_json(item, f"instances[{i}]") for i, item in enumerate(instances)], True
    return [task.from_json(payload, "the body")], False
