"""The registry over HTTP: workspaces, dataset versions, runs and model versions, for the remote
client (`appliance.connect(url, token=...)`) and any program on another machine."""

from __future__ import annotations

from typing import Any

from appliance.server.resources.datasets import DatasetController
from appliance.server.resources.models import ModelController
from appliance.server.resources.runs import RunController
from appliance.server.resources.workspaces import WorkspaceController

ROUTES: list[Any] = [WorkspaceController, DatasetController, RunController, ModelController]
"""The controllers of this package, registered by `create_app`."""
