"""The management API for deployments: list, show, deploy (hot swap) and roll back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import anyio
import msgspec
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from appliance.access.roles import Role
from appliance.access.rules import allow
from appliance.server.answers import Answer
from appliance.server.auth import check_workspace, principal_of
from appliance.serving.options import DeployOptions
from appliance.serving.pool import LiveModel
from appliance.serving.service import Serving

AnyRequest = Request[Any, Any, Any]


class DeployRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Unknown fields are refused (400), not ignored: a `recipe` here once did nothing. How a
    version is served is recorded when it is registered (`model register --recipe/--task`)."""

    workspace: str
    endpoint: str
    model: str
    """`NAME@VERSION` or `NAME@ALIAS`."""
    quantization: str = "none"
    device: str = "auto"
    max_batch_size: int = 8
    max_batch_wait_ms: int = 5
    backend: str = "auto"
    """auto, torch, onnxruntime or openvino (auto: the measured fastest for the device)."""
    instances: int = 1
    """Loaded copies of the model, each with its own batcher (1-16)."""
    instance_kind: str = "thread"
    """thread, or process (a spawned worker per instance, fed through shared memory)."""
    keep_alive_s: int = 0
    """Idle seconds before the model is unloaded (loaded again on its next request); 0: kept."""


@dataclass
class RollbackRequest:
    workspace: str


class Deployment(Answer):
    """A deployment's record (`appliance/serving/deployments.py`) with its model's name and
    version, plus what this server holds for it."""

    id: str
    workspace_id: str
    endpoint: str
    model_version_id: str
    quantization: str
    device: str
    max_batch_size: int
    max_batch_wait_ms: int
    backend: str
    instances: int
    instance_kind: str
    keep_alive_s: int
    status: str
    created_at: str
    updated_at: str
    workspace: str
    model: str
    version: int
    loaded: bool
    """Whether this server holds the model (false while it loads, or when loading failed)."""
    torch_threads: int | None
    """The torch threads the loaded model runs with (null when not loaded)."""
    serving_backend: str | None = None
    """What runs the loaded model: torch, onnxruntime or openvino; `backend` is what the deploy
    asked for (auto: the measured best where it can run the model, else torch; also torch
    where the chosen backend's export failed). Null when not loaded."""
    resident: str = "unloaded"
    """loaded; loading; cold (unloaded after its keep-alive or to make room: its next request
    loads it); unloaded (not held and not loaded on request, e.g. its load failed)."""
    memory_mb: float | None = None
    """What the model takes while loaded: measured (RSS growth of its load) or estimated from
    its weights, see `memory_source` (null when the server holds nothing for it)."""
    memory_source: str | None = None
    """measured or estimated."""
    memory_budget_mb: float | None = None
    """The budget its device's models share (memory_budget_mb, gpu_memory_budget_mb)."""


class DeploymentController(Controller):
    path = "/v1/deployments"
    tags = ["deployments"]

    @get("/", opt=allow(Role.viewer))
    async def list_deployments(
        self, request: AnyRequest, serving: NamedDependency[Serving]
    ) -> list[Deployment]:
        """Every deployment (of the token's workspace, for a user limited to one)."""
        live, sees = _live(serving), principal_of(request).sees
        rows = serving.services.deployments.list()
        return [_with_live(live, row, serving) for row in rows if sees(row["workspace"])]

    @post("/", opt=allow(Role.developer), status_code=201)
    async def deploy(
        self, request: AnyRequest, serving: NamedDependency[Serving], data: JSONBody[DeployRequest]
    ) -> Deployment:
        """Load and warm the model beside the one serving, then switch traffic to it."""
        check_workspace(request, data.workspace)
        options = DeployOptions(
            data.quantization, data.device, data.max_batch_size, data.max_batch_wait_ms,
            data.backend, data.instances, data.instance_kind, data.keep_alive_s,
        )  # fmt: skip
        row = await anyio.to_thread.run_sync(
            serving.deploy, data.workspace, data.endpoint, data.model, options
        )
        return _shown(serving, data.workspace, row["endpoint"])

    @post(
        "/{endpoint:str}/rollback",
        opt=allow(Role.developer, scope=("endpoint", "endpoint")),
        status_code=200,
    )
    async def rollback(
        self,
        request: AnyRequest,
        serving: NamedDependency[Serving],
        endpoint: FromPath[str],
        data: JSONBody[RollbackRequest],
    ) -> Deployment:
        """Return the endpoint to the version it served before."""
        check_workspace(request, data.workspace)
        await anyio.to_thread.run_sync(serving.rollback, data.workspace, endpoint)
        return _shown(serving, data.workspace, endpoint)


def _shown(serving: NamedDependency[Serving], workspace: str, endpoint: str) -> Deployment:
    rows = [r for r in serving.services.deployments.list(workspace) if r["endpoint"] == endpoint]
    return _with_live(_live(serving), rows[0], serving)


def _live(serving: NamedDependency[Serving]) -> dict[tuple[str, str], LiveModel]:
    return {(m.workspace, m.endpoint): m for m in serving.pool.live()}


def _with_live(
    live: dict[tuple[str, str], LiveModel], row: dict[str, Any], serving: Serving
) -> Deployment:
    """The record plus what the server holds for it: loaded or not, its torch threads, its
    residency and memory."""
    model = live.get((row["workspace"], row["endpoint"]))
    threads = model.instance.torch_threads if model else None
    backend = model.runtime.serving_backend if model else None
    live_view = {"loaded": model is not None, "torch_threads": threads, "serving_backend": backend}
    return msgspec.convert({**row, **live_view, **_memory(serving, row)}, Deployment)


def _memory(serving: Serving, row: dict[str, Any]) -> dict[str, Any]:
    key = (row["workspace"], row["endpoint"])
    residency = serving.residency
    used = residency.used_mb(key)
    device = used.device if used else row["device"]
    return {
        "resident": residency.state(key),
        "memory_mb": used.mb if used else None,
        "memory_source": used.source if used else None,
        "memory_budget_mb": residency.budget_mb("cuda" if device == "cuda" else "cpu"),
    }
