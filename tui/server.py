"""Talking to the appliance's HTTP server from the UI: the server `appliance up` runs in this
process (or another one on the same home). Actions that change live state — deploy, roll back,
run a job now, approve, predict, rate — go through it, so they take the same path as any client
and the running scheduler and models see them. Blocking: call from thread workers."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from appliance.errors import ApplianceError


class ServerClient:
    def __init__(self, base_url: str, token: str = ""):
        self.base_url = base_url.rstrip("/")
        self._token = token

    def get(self, path: str) -> Any:
        return self._send("GET", path, None, {})

    def post_json(self, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body or {}).encode()
        return self._send("POST", path, data, {"content-type": "application/json"})

    def post_bytes(self, path: str, data: bytes, content_type: str) -> Any:
        return self._send("POST", path, data, {"content-type": content_type})

    def _send(self, method: str, path: str, data: bytes | None, headers: dict[str, str]) -> Any:
        if self._token:
            headers = {**headers, "authorization": f"Bearer {self._token}"}
        request = urllib.request.Request(
            self.base_url + path, data=data, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=600) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            raise ApplianceError(f"the server refused: {_message(exc)}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise ApplianceError(f"the server at {self.base_url} did not answer ({exc})") from None
        return json.loads(body) if body else None


def _message(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read()).get("error", exc.reason))
    except (ValueError, AttributeError):
        return str(exc.reason)
