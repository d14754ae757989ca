"""`Client`: one connection to an appliance, its home here or its server over HTTP, and the
workspaces, predictions and feedback reached through it. The same class either way; only the
backend differs (`local.py`, `remote.py`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance.client.backend import Backend, Row
from appliance.client.predicting import feedback_body, predict_body
from appliance.client.workspace import Workspace
from appliance.errors import InvalidInput

if TYPE_CHECKING:
    from appliance.services import Services

TOKEN_VARIABLE = "APPLIANCE_TOKEN"


class Client:
    def __init__(self, backend: Backend):
        self.backend = backend

    @classmethod
    def open(cls, home: str | None = None, **overrides: Any) -> Client:
        """The home at `home` (default: settings), on this machine."""
        from appliance.client.local import LocalBackend
        from appliance.services import Services

        return cls(LocalBackend(Services.open(home=home, **overrides)))

    @classmethod
    def remote(cls, url: str, token: str | None = None, cache: str | Path | None = None) -> Client:
        """The server at `url`. `token` defaults to $APPLIANCE_TOKEN; downloaded model files go
        under `cache` (default: $XDG_CACHE_HOME/appliance, else ~/.cache/appliance)."""
        from appliance.client.remote import RemoteBackend

        if not url.startswith(("http://", "https://")):
            raise InvalidInput(f"'{url}' is no server address: give one like http://box:8765")
        token = token or os.environ.get(TOKEN_VARIABLE) or None
        return cls(RemoteBackend(url, token, Path(cache or _default_cache()).expanduser()))

    @property
    def services(self) -> Services:
        """The home's services, for what the client does not offer (local clients only)."""
        services: Services | None = getattr(self.backend, "services", None)
        if services is None:
            raise InvalidInput(
                f"the client of {self.backend.where} works over HTTP and has no local services"
            )
        return services

    def workspace(self, name: str, create: bool = True) -> Workspace:
        """The workspace `name`; created when missing unless `create=False`."""
        self.backend.workspace(name, create)
        return Workspace(self, name)

    def workspaces(self) -> list[Workspace]:
        return [Workspace(self, row["name"]) for row in self.backend.workspaces()]

    def predict(
        self, endpoint: str, *, image: bytes | str | Path | None = None,
        keywords: str | None = None, text: str | None = None, title: str | None = None,
        **fields: Any,
    ) -> Row:  # fmt: skip
        """Ask the deployed `endpoint` one input, by its task: a captioner an `image` (bytes or
        a file's path) with optional `keywords`, a text classifier a `text` with an optional
        `title`. Answers as `POST /v1/endpoints/{name}/predict` does; its `id` is for feedback."""
        body = predict_body(image=image, keywords=keywords, text=text, title=title, **fields)
        return self.backend.predict(endpoint, body)

    def feedback(
        self, prediction_id: str, *, rating: int | None = None, thumb: str | None = None,
        comment: str = "", ignored_keywords: list[str] | None = None,
    ) -> Row:  # fmt: skip
        """Rate a prediction: `rating` 1 (bad) to 5 (good) and/or `thumb` 'up' or 'down', a
        comment, and the request's keywords the answer ignored. Answers the stored feedback."""
        body = feedback_body(rating, thumb, comment, ignored_keywords or [])
        return self.backend.feedback(prediction_id, body)

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.backend.where})"


def _default_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "appliance"
