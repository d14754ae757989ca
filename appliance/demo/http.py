"""The demo's HTTP client: plain urllib against the server it runs, errors as ApplianceError."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from appliance.errors import ApplianceError


def wait_ready(base: str, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/v2/health/ready", timeout=5) as response:
                if response.status == 200:
                    return
        except urllib.error.URLError:
            pass
        time.sleep(0.1)
    raise ApplianceError("the demo's server never became ready")


def get(url: str) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(url, timeout=600) as response:
            return dict(json.loads(response.read()))
    except urllib.error.HTTPError as exc:
        raise ApplianceError(f"{url} answered {exc.code}: {exc.read().decode()}") from None


def post(url: str, body: bytes, content_type: str) -> dict[str, Any]:
    request = urllib.request.Request(
        url, data=body, headers={"content-type": content_type}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            return dict(json.loads(response.read()))
    except urllib.error.HTTPError as exc:
        raise ApplianceError(f"{url} answered {exc.code}: {exc.read().decode()}") from None


def post_json(url: str, data: dict[str, Any]) -> dict[str, Any]:
    return post(url, json.dumps(data).encode(), "application/json")
