"""The registry over HTTP: workspaces, dataset versions, runs and model versions, for the remote
client (`appliance.connect(url, token=...)`) and any program on another machine."""

from __future__ import annotations

from typing import Any

ROUTES: list[Any] = []
"""The controllers of this package, registered by `create_app`."""
