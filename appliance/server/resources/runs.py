"""Runs over HTTP: list and show them, start a recipe in a child process (as `appliance run
start --detach`) or open a run a notebook logs into (as `Workspace.start_run`), log metrics,
params and artifacts, end, cancel, and read the log. A run of another workspace than the path's
is 404, as if it did not exist."""

from __future__ import annotations

import threading
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

import anyio
import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, Parameter
from litestar.response import File

from appliance.access.roles import Role
from appliance.access.rules import allow
from appliance.errors import InvalidInput, NotFound
from appliance.runs.launcher import Execution, reap_runs, start_run
from appliance.server.answers import Answer
from appliance.server.resources.uploads import FORM, received
from appliance.services import Services

Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
"""What SQLite holds (a larger number would be a 500, not a 400)."""


class RunRequest(msgspec.Struct, forbid_unknown_fields=True):
    recipe: str = ""
    """The recipe to run (built in or added to the workspace); with `execute=false`, only a
    label of the run."""
    dataset: str | None = None
    """`NAME` or `NAME@VERSION` of the training data (required with `execute`)."""
    params: dict[str, Any] = {}
    name: str = ""
    seed: Int64 | None = None
    execute: bool = True
    """true: run the recipe in a child process; false: open a run to log into."""
    model: str | None = None
    """With `execute`: register the version under this model name (default: the recipe's)."""
    executor: Literal["local", "ray"] = "local"
    """With `execute`: where it trains: `local` (a child process of the server) or `ray`."""
    ray_address: str | None = None
    """With `executor=ray`: the cluster (HOST:PORT of its GCS, or ray://HOST:PORT); default the
    server's RAY_ADDRESS. No answer there is a 503 before anything is recorded."""


class MetricPoint(msgspec.Struct, forbid_unknown_fields=True):
    key: str
    value: float
    step: Int64 = 0


class MetricsRequest(msgspec.Struct, forbid_unknown_fields=True):
    metrics: list[MetricPoint]


class ParamsRequest(msgspec.Struct, forbid_unknown_fields=True):
    params: dict[str, Any]


class EndRequest(msgspec.Struct, forbid_unknown_fields=True):
    status: str = "succeeded"
    """succeeded, failed or cancelled."""
    error: str | None = None


class RunSummary(Answer):
    """A run as listed (`appliance run list`): its lineage columns are in `GET …/runs/{id}`."""

    id: str
    workspace_id: str
    name: str
    recipe: str
    status: str
    """queued, running, succeeded, failed or cancelled."""
    params: dict[str, Any]
    dataset_id: str | None
    dataset_digest: str | None
    seed: int | None
    model_name: str | None
    error: str | None
    created_at: str
    started_at: str | None
    ended_at: str | None
    executor: str
    """Where it trained: local or ray."""


class Run(RunSummary):
    """A run with its lineage, latest metrics and artifact names (`appliance run show`)."""

    code_hash: str | None
    library_versions: dict[str, str] | None
    parent_model_version_id: str | None
    log_path: str | None
    pid: int | None
    job_id: str | None
    cause: str | None
    executor_ref: dict[str, Any]
    """What the executor says of the run (ray: address, job_id, worker_pid, host, node_id)."""
    metrics: dict[str, float]
    artifacts: list[str]


class Metric(Answer):
    key: str
    value: float
    step: int
    logged_at: str


class Logged(Answer):
    logged: int
    """How many metrics or params were recorded."""


class Artifacts(Answer):
    stored: list[str]
    """The artifact names stored with the run."""


def _in_workspace(services: Services, workspace: str, run_id: str) -> dict[str, Any]:
    """The run, when it belongs to `workspace` (else 404: the path names no such run); one left
    queued or running by a process that died is failed first, as `appliance run show` does."""
    ws = services.workspaces.get(workspace)
    try:
        run = services.runs.get(run_id)
    except NotFound:
        run = None
    if run is None or run["workspace_id"] != ws["id"]:
        raise NotFound(f"no run '{run_id}' in workspace '{workspace}'")
    if run["status"] in ("queued", "running"):
        run = reap_runs(services, run_id) or run
    return run


def _shown(services: Services, run: dict[str, Any]) -> Run:
    """As `appliance run show`: the record, its latest metrics and its artifacts' names."""
    record = {k: v for k, v in run.items() if k != "progress"}
    record["metrics"] = services.runs.latest_metrics(run["id"])
    record["artifacts"] = [a["path"] for a in services.runs.artifacts(run["id"])]
    return msgspec.convert(record, Run)


def _start(services: Services, workspace: str, data: RunRequest) -> dict[str, Any]:
    if not data.execute:  # what Workspace.start_run does, minus the `with` block
        lineage: dict[str, Any] = {"seed": data.seed}
        if data.dataset is not None:
            version = services.datasets.get(workspace, data.dataset)
            lineage.update(dataset_id=version["dataset_id"], dataset_digest=version["digest"])
        return services.runs.create(
            workspace, recipe=data.recipe, name=data.name, params=data.params, **lineage
        )
    if not data.recipe or data.dataset is None:
        raise InvalidInput("a run that executes needs a recipe and a dataset (NAME@VERSION)")
    params = dict(data.params) | ({"seed": data.seed} if data.seed is not None else {})
    execution = start_run(
        services, workspace, data.recipe, data.dataset, params, data.model, die_with_parent=True,
        executor=data.executor, ray_address=data.ray_address,
    )  # fmt: skip
    if data.name:
        services.runs.update(execution.run_id, name=data.name)
    # Someone must wait for the child (no zombie) and fail the run if it dies without a word.
    threading.Thread(
        target=_watch, args=(execution,), name=f"run-{execution.run_id}", daemon=True
    ).start()
    return execution.status()


def _watch(execution: Execution) -> None:
    try:
        execution.wait()
    except Exception:  # the server closed its services meanwhile: the next start reaps it
        pass


class RunController(Controller):
    path = "/v1/workspaces/{workspace:str}/runs"
    tags = ["runs"]

    @get("/", opt=allow(Role.viewer), sync_to_thread=True)
    def list_runs(
        self,
        services: NamedDependency[Services],
        workspace: FromPath[str],
        status: FromQuery[str | None] = None,
        limit: Annotated[int, Parameter(ge=1, le=10_000)] = 50,
    ) -> list[RunSummary]:
        """The newest runs first (`?status=running&limit=50`)."""
        reap_runs(services)
        rows = services.runs.list(workspace, status=status or None, limit=limit)
        return msgspec.convert(rows, list[RunSummary])

    @post("/", opt=allow(Role.developer), status_code=201, sync_to_thread=True)
    def start(
        self,
        services: NamedDependency[Services],
        workspace: FromPath[str],
        data: JSONBody[RunRequest],
    ) -> Run:
        """Start a run: with `execute` (the default) the recipe trains in a child process of
        the server, queued then running (poll `GET …/runs/{id}`); without, a running run for a
        notebook to log into and end."""
        return _shown(services, services.runs.get(_start(services, workspace, data)["id"]))

    @get("/{run_id:str}", opt=allow(Role.viewer), sync_to_thread=True)
    def show_run(
        self, services: NamedDependency[Services], workspace: FromPath[str], run_id: FromPath[str]
    ) -> Run:
        return _shown(services, _in_workspace(services, workspace, run_id))

    @get("/{run_id:str}/metrics", opt=allow(Role.viewer), sync_to_thread=True)
    def metric_history(
        self,
        services: NamedDependency[Services],
        workspace: FromPath[str],
        run_id: FromPath[str],
        key: FromQuery[str | None] = None,
    ) -> list[Metric]:
        """Every value logged, by key then step (`?key=loss` for one)."""
        _in_workspace(services, workspace, run_id)
        history = services.runs.metrics(run_id)
        return [
            Metric(key=name, value=p["value"], step=p["step"], logged_at=p["logged_at"])
            for name, points in history.items()
            if key is None or name == key
            for p in points
        ]

    @post("/{run_id:str}/metrics", opt=allow(Role.developer), status_code=200, sync_to_thread=True)
    def log_metrics(
        self,
        services: NamedDependency[Services],
        workspace: FromPath[str],
        run_id: FromPath[str],
        data: JSONBody[MetricsRequest],
    ) -> Logged:
        _in_workspace(services, workspace, run_id)
        services.runs.log_metrics(run_id, [(m.key, m.value, m.step) for m in data.metrics])
        return Logged(logged=len(data.metrics))

    @post("/{run_id:str}/params", opt=allow(Role.developer), status_code=200, sync_to_thread=True)
    def log_params(
        self,
        services: NamedDependency[Services],
        workspace: FromPath[str],
        run_id: FromPath[str],
        data: JSONBody[ParamsRequest],
    ) -> Logged:
        """Add params; one already logged cannot change its value (409)."""
        _in_workspace(services, workspace, run_id)
        services.runs.log_params(run_id, data.params)
        return Logged(logged=len(data.params))

    @post("/{run_id:str}/end", opt=allow(Role.developer), status_code=200, sync_to_thread=True)
    def end_run(
        self,
        services: NamedDependency[Services],
        workspace: FromPath[str],
        run_id: FromPath[str],
        data: JSONBody[EndRequest],
    ) -> Run:
        """Finish a run a notebook logged into; one already finished is 409."""
        _in_workspace(services, workspace, run_id)
        if data.status not in ("succeeded", "failed", "cancelled"):
            raise InvalidInput(f"a run ends succeeded, failed or cancelled, not {data.status!r}")
        services.runs.set_status(run_id, data.status, data.error)
        return _shown(services, services.runs.get(run_id))

    @post("/{run_id:str}/cancel", opt=allow(Role.developer), status_code=200, sync_to_thread=True)
    def cancel(
        self, services: NamedDependency[Services], workspace: FromPath[str], run_id: FromPath[str]
    ) -> Run:
        """Cancel a queued or running run (its child process is stopped); a finished one
        is 409."""
        _in_workspace(services, workspace, run_id)
        return _shown(services, Execution(services, run_id).cancel())

    @get("/{run_id:str}/logs", opt=allow(Role.viewer), media_type="text/plain", sync_to_thread=True)
    def logs(
        self,
        services: NamedDependency[Services],
        workspace: FromPath[str],
        run_id: FromPath[str],
        tail: Annotated[int, Parameter(ge=0, le=1_000_000)] = 0,
    ) -> Response[str] | File:
        """The child process's output, as `appliance run logs` (`?tail=N`: its last N lines)."""
        run = _in_workspace(services, workspace, run_id)
        execution = Execution(services, run_id)
        if tail <= 0 and run["log_path"] and Path(run["log_path"]).is_file():
            return File(
                run["log_path"], media_type="text/plain; charset=utf-8",
                content_disposition_type="inline",
            )  # fmt: skip
        return Response(execution.logs(tail), media_type="text/plain; charset=utf-8")

    @post(
        "/{run_id:str}/artifacts",
        opt=allow(Role.developer, content_types=(FORM,)),
        request_max_body_size=None,  # bounded by upload_max_bytes as it streams (uploads.py)
        status_code=201,
    )
    async def log_artifact(
        self,
        request: Request[Any, Any, Any],
        services: NamedDependency[Services],
        workspace: FromPath[str],
        run_id: FromPath[str],
        name: FromQuery[str | None] = None,
    ) -> Artifacts:
        """Store the form's part `file` with the run, as `ActiveRun.log_artifact` does, under
        `?name=` (default: the file's name)."""
        await anyio.to_thread.run_sync(_in_workspace, services, workspace, run_id)
        async with received(request, services.settings, "file") as got:
            stored_as = _artifact_name(name or got.filename)
            stored = await anyio.to_thread.run_sync(
                services.runs.log_artifact, run_id, got.path, stored_as
            )
        return Artifacts(stored=stored)


def _artifact_name(name: str) -> str:
    """A relative name of at most 250 characters, without `..` (it may hold folders)."""
    path = PurePosixPath(name)
    if not name or len(name) > 250 or path.is_absolute() or ".." in path.parts or "\x00" in name:
        raise InvalidInput(
            "an artifact needs a relative name (?name=, or the file's name) without '..', "
            "of at most 250 characters"
        )
    return path.as_posix()
