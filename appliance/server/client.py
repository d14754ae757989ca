"""The one HTTP client of the appliance's own server, for the CLI, the TUI and the demo. It finds
its home's server through the record the server keeps in the home (never a guessed port), names
its home on every request, sends a token (the admin token, else the home's local key), and
turns an error answer into an ApplianceError carrying the server's message. Blocking (httpx):
the TUI calls it from thread workers; one client may be shared between threads."""

from __future__ import annotations

import os
import time
from types import TracebackType
from typing import Any

import httpx

from appliance.access.authenticate import read_local_key
from appliance.errors import ApplianceError
from appliance.server.record import (
    ACTOR_HEADER,
    HOME_HEADER,
    INSTANCE_HEADER,
    ROLE_HEADER,
    home_id,
    read_record,
)
from appliance.settings import Settings

TIMEOUT = httpx.Timeout(600, connect=5)
"""Long reads on purpose: a deploy loads and warms a model before it answers."""
PROBE_TIMEOUT = 2.0


class ServerRefused(ApplianceError):
    """The server answered with an error; `status` is its HTTP status."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class ServerClient:
    def __init__(self, base_url: str, settings: Settings, timeout: httpx.Timeout = TIMEOUT):
        self.base_url = base_url.rstrip("/")
        headers = {HOME_HEADER: home_id(settings.home)}
        # The admin token when one is set, else the home's local key: who reads the home's
        # files is the box's own user (`local`) to its server (appliance/access/authenticate.py).
        if token := settings.token or read_local_key(settings.home):
            headers["authorization"] = f"Bearer {token}"
        if actor := os.environ.get("APPLIANCE_ACTOR"):  # the TUI `appliance web` runs for a user
            headers |= {ACTOR_HEADER: actor, ROLE_HEADER: os.environ.get("APPLIANCE_ROLE", "")}
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    @classmethod
    def find(cls, settings: Settings) -> ServerClient | None:
        """A client of the server running for `settings.home`, or None when none is: no
        record, or a stale one (its process is gone, or its address answers as another
        server, or not at all)."""
        record = read_record(settings.home)
        if record is None:
            return None
        client = cls(record.url, settings)
        try:
            answer = client._http.get("/v2/health/live", timeout=PROBE_TIMEOUT)
        except httpx.HTTPError:
            answer = None
        if answer is None or answer.headers.get(INSTANCE_HEADER) != record.instance:
            client.close()
            return None
        return client

    def get(self, path: str) -> Any:
        return self._send("GET", path)

    def post_json(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self._send("POST", path, json=body or {})

    def post_bytes(self, path: str, data: bytes, content_type: str) -> Any:
        return self._send("POST", path, content=data, headers={"content-type": content_type})

    def wait_ready(self, seconds: float = 120) -> None:
        """Until /v2/health/ready says every recorded deployment is loaded."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                if self._http.get("/v2/health/ready", timeout=PROBE_TIMEOUT).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise ApplianceError(f"the server at {self.base_url} was not ready within {seconds:g} s")

    def _send(self, method: str, path: str, **request: Any) -> Any:
        try:
            answer = self._http.request(method, path, **request)
        except httpx.HTTPError as exc:
            raise ApplianceError(
                f"the server at {self.base_url} did not answer ({exc or type(exc).__name__})"
            ) from None
        if answer.is_error:
            raise ServerRefused(f"the server refused: {_message(answer)}", answer.status_code)
        return answer.json() if answer.content else None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ServerClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _message(answer: httpx.Response) -> str:
    try:
        return str(answer.json().get("error", answer.reason_phrase))
    except (ValueError, AttributeError):
        return answer.reason_phrase or str(answer.status_code)
