"""The jobs API: add, list, show, pause, resume and remove a workspace's jobs (rows the scheduler
re-reads by itself), run one now in the background, and approve a version a job run holds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import anyio
from litestar import Controller, Request, delete, get, post
from litestar.params import FromPath, FromQuery, JSONBody

from appliance.scheduler.jobs import parse_trigger
from appliance.services import Services

AnyRequest = Request[Any, Any, Any]


@dataclass
class JobRequest:
    name: str
    kind: str
    """retrain, dataset_watch, alert_trigger, batch_predict or housekeeping."""
    trigger: str
    """'every 10m' or 'cron 0 3 * * *'."""
    target: str = ""
    """The model, dataset or endpoint the job acts on (none for housekeeping)."""
    params: dict[str, Any] = field(default_factory=dict)


class JobController(Controller):
    path = "/v1/workspaces/{workspace:str}/jobs"
    tags = ["jobs"]

    @get("/")
    async def list_jobs(
        self, request: AnyRequest, workspace: FromPath[str]
    ) -> list[dict[str, Any]]:
        """The workspace's jobs with their trigger and last run."""
        services: Services = request.app.state.services
        return await anyio.to_thread.run_sync(services.jobs.list, workspace)

    @post("/", status_code=201)
    async def add_job(
        self, request: AnyRequest, workspace: FromPath[str], data: JSONBody[JobRequest]
    ) -> dict[str, Any]:
        """Add a job; the scheduler picks it up by itself. A taken name is 409."""
        services: Services = request.app.state.services
        trigger = parse_trigger(data.trigger)
        return await anyio.to_thread.run_sync(
            services.jobs.add, workspace, data.name, data.kind, trigger, data.target, data.params
        )

    @get("/{name:str}")
    async def show_job(
        self,
        request: AnyRequest,
        workspace: FromPath[str],
        name: FromPath[str],
        limit: FromQuery[int] = 20,
    ) -> dict[str, Any]:
        """The job and its latest runs, newest first."""
        services: Services = request.app.state.services

        def read() -> dict[str, Any]:
            job = services.jobs.get(workspace, name)
            return {**job, "runs": services.jobs.runs(job["id"], limit)}

        return await anyio.to_thread.run_sync(read)

    @delete("/{name:str}", status_code=204)
    async def remove_job(
        self, request: AnyRequest, workspace: FromPath[str], name: FromPath[str]
    ) -> None:
        """Remove the job and the record of its runs."""
        services: Services = request.app.state.services
        await anyio.to_thread.run_sync(services.jobs.remove, workspace, name)

    @post("/{name:str}/pause", status_code=200)
    async def pause_job(
        self, request: AnyRequest, workspace: FromPath[str], name: FromPath[str]
    ) -> dict[str, Any]:
        """Stop triggering the job until it is resumed."""
        services: Services = request.app.state.services
        return await anyio.to_thread.run_sync(services.jobs.set_enabled, workspace, name, False)

    @post("/{name:str}/resume", status_code=200)
    async def resume_job(
        self, request: AnyRequest, workspace: FromPath[str], name: FromPath[str]
    ) -> dict[str, Any]:
        """Trigger the job again."""
        services: Services = request.app.state.services
        return await anyio.to_thread.run_sync(services.jobs.set_enabled, workspace, name, True)

    @post("/{name:str}/run", status_code=202)
    async def run_job(
        self, request: AnyRequest, workspace: FromPath[str], name: FromPath[str]
    ) -> dict[str, str]:
        """Start the job now in the background; answers the job run id at once. 409 when the
        job is already running."""
        services: Services = request.app.state.services
        job = await anyio.to_thread.run_sync(services.jobs.get, workspace, name)
        job_run = await request.app.state.scheduler.run_now(job, "manual")
        return {"job_run": job_run}


class JobRunController(Controller):
    path = "/v1/job-runs"
    tags = ["jobs"]

    @post("/{job_run_id:str}/approve", status_code=200)
    async def approve(self, request: AnyRequest, job_run_id: FromPath[str]) -> dict[str, Any]:
        """Deploy the version the job run holds for approval; answers the updated job run."""
        result: dict[str, Any] = await request.app.state.scheduler.approve(job_run_id)
        return result
