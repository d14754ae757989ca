"""The JSON bodies of a predict request and of feedback, as the server reads them
(`appliance/server/inputs.py`, `appliance/server/monitoring.py`): bytes go as base64."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from appliance.errors import InvalidInput, NotFound


def predict_body(**fields: Any) -> dict[str, Any]:
    """The fields given (None left out); bytes, or a file's path for `image`, as base64."""
    body: dict[str, Any] = {}
    for name, value in fields.items():
        if value is None:
            continue
        if name == "image" and isinstance(value, str | Path):
            path = Path(value).expanduser()
            if not path.is_file():
                raise NotFound(f"no image file {path}: give its bytes or the path of a file")
            value = path.read_bytes()
        if isinstance(value, bytes | bytearray):
            value = base64.b64encode(value).decode("ascii")
        body[name] = value
    if not body:
        raise InvalidInput("nothing to predict: give image=... (a captioner) or text=...")
    return body


def feedback_body(
    rating: int | None, thumb: str | None, comment: str, ignored_keywords: list[str]
) -> dict[str, Any]:
    return {"rating": rating, "thumb": thumb, "comment": comment,
            "ignored_keywords": list(ignored_keywords)}  # fmt: skip
