"""The management API for deployments: list, show, deploy (hot swap) and roll back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import anyio
from litestar import Controller, Request, get, post
from litestar.params import FromPath, JSONBody

from appliance.serving.options import DeployOptions
from appliance.serving.pool import LiveModel
from appliance.serving.service import Serving

AnyRequest = Request[Any, Any, Any]


@dataclass
class DeployRequest:
    workspace: str
    endpoint: str
    model: str
    """`NAME@VERSION` or `NAME@ALIAS`."""
    quantization: str = "none"
    device: str = "auto"
    max_batch_size: int = 8
    max_batch_wait_ms: int = 5


@dataclass
class RollbackRequest:
    workspace: str


class DeploymentController(Controller):
    path = "/v1/deployments"
    tags = ["deployments"]

    @get("/")
    async def list_deployments(self, request: AnyRequest) -> list[dict[str, Any]]:
        serving: Serving = request.app.state.serving
        live = _live(serving)
        return [_with_live(live, row) for row in serving.services.deployments.list()]

    @post("/", status_code=201)
    async def deploy(self, request: AnyRequest, data: JSONBody[DeployRequest]) -> dict[str, Any]:
        """Load and warm the model beside the one serving, then switch traffic to it."""
        serving: Serving = request.app.state.serving
        options = DeployOptions(
            data.quantization, data.device, data.max_batch_size, data.max_batch_wait_ms
        )
        row = await anyio.to_thread.run_sync(
            serving.deploy, data.workspace, data.endpoint, data.model, options
        )
        return _shown(serving, data.workspace, row["endpoint"])

    @post("/{endpoint:str}/rollback", status_code=200)
    async def rollback(
        self,
        request: AnyRequest,
        endpoint: FromPath[str],
        data: JSONBody[RollbackRequest],
    ) -> dict[str, Any]:
        """Return the endpoint to the version it served before."""
        serving: Serving = request.app.state.serving
        await anyio.to_thread.run_sync(serving.rollback, data.workspace, endpoint)
        return _shown(serving, data.workspace, endpoint)


def _shown(serving: Serving, workspace: str, endpoint: str) -> dict[str, Any]:
    rows = [r for r in serving.services.deployments.list(workspace) if r["endpoint"] == endpoint]
    return _with_live(_live(serving), rows[0])


def _live(serving: Serving) -> dict[tuple[str, str], LiveModel]:
    return {(m.workspace, m.endpoint): m for m in serving.pool.live()}


def _with_live(live: dict[tuple[str, str], LiveModel], row: dict[str, Any]) -> dict[str, Any]:
    """The record plus what the server holds for it: loaded or not, and its torch threads."""
    model = live.get((row["workspace"], row["endpoint"]))
    threads = model.instance.torch_threads if model else None
    return {**row, "loaded": model is not None, "torch_threads": threads}
