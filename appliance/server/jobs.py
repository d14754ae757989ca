"""The jobs API: add, list, show, pause, resume and remove a workspace's jobs (rows the scheduler
re-reads by itself), run one now in the background, and approve a version a job run holds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import anyio
import msgspec
from litestar import Controller, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody
from msgspec import UNSET, UnsetType

from appliance.access.roles import Role
from appliance.access.rules import allow
from appliance.scheduler.jobs import parse_trigger
from appliance.scheduler.service import Scheduler
from appliance.server.answers import Answer
from appliance.services import Services


@dataclass
class JobRequest:
    name: str
    kind: str
    """retrain, dataset_watch, alert_trigger, batch_predict, housekeeping or backup."""
    trigger: str
    """'every 10m' or 'cron 0 3 * * *'."""
    target: str = ""
    """The model, dataset or endpoint the job acts on (none for housekeeping and backup)."""
    params: dict[str, Any] = field(default_factory=dict)


class Trigger(Answer):
    """One of the two: an interval in seconds, or a cron expression."""

    interval_s: int | UnsetType = UNSET
    cron: str | UnsetType = UNSET


class Job(Answer):
    """A job (`appliance/scheduler/jobs.py`) with the time and status of its last run."""

    id: str
    workspace_id: str
    workspace: str
    name: str
    kind: str
    target: str
    trigger: Trigger
    params: dict[str, Any]
    enabled: bool
    created_at: str
    updated_at: str
    last_run_at: str | None
    last_status: str | None


class JobRun(Answer):
    """One time a job ran: what caused it, how it ended, and what it did (`detail`)."""

    id: str
    job_id: str
    cause: str
    status: str
    """running, succeeded, failed, skipped or awaiting_approval."""
    run_id: str | None
    """The training run it started, if any."""
    detail: dict[str, Any]
    started_at: str
    ended_at: str | None
    lane: str | None = None
    """Runs of one lane run one at a time: `job:<id>`, or `retrain:<workspace>:<model>`."""
    pid: int | None = None
    """The process that ran (or runs) it, and its machine."""
    host: str | None = None


class JobWithRuns(Job):
    runs: list[JobRun]
    """The latest runs, newest first."""


class StartedJobRun(Answer):
    job_run: str
    """The id of the job run just started."""


class JobController(Controller):
    path = "/v1/workspaces/{workspace:str}/jobs"
    tags = ["jobs"]

    @get("/", opt=allow(Role.viewer))
    async def list_jobs(
        self, services: NamedDependency[Services], workspace: FromPath[str]
    ) -> list[Job]:
        """The workspace's jobs with their trigger and last run."""
        found = await anyio.to_thread.run_sync(services.jobs.list, workspace)
        return msgspec.convert(found, list[Job])

    @post("/", opt=allow(Role.developer), status_code=201)
    async def add_job(
        self,
        services: NamedDependency[Services],
        workspace: FromPath[str],
        data: JSONBody[JobRequest],
    ) -> Job:
        """Add a job; the scheduler picks it up by itself. A taken name is 409."""
        trigger = parse_trigger(data.trigger)
        added = await anyio.to_thread.run_sync(
            services.jobs.add, workspace, data.name, data.kind, trigger, data.target, data.params
        )
        return msgspec.convert(added, Job)

    @get("/{name:str}", opt=allow(Role.viewer))
    async def show_job(
        self,
        services: NamedDependency[Services],
        workspace: FromPath[str],
        name: FromPath[str],
        limit: FromQuery[int] = 20,
    ) -> JobWithRuns:
        """The job and its latest runs, newest first."""

        def read() -> dict[str, Any]:
            job = services.jobs.get(workspace, name)
            return {**job, "runs": services.jobs.runs(job["id"], limit)}

        return msgspec.convert(await anyio.to_thread.run_sync(read), JobWithRuns)

    @delete("/{name:str}", opt=allow(Role.developer), status_code=204)
    async def remove_job(
        self, services: NamedDependency[Services], workspace: FromPath[str], name: FromPath[str]
    ) -> None:
        """Remove the job and the record of its runs."""
        await anyio.to_thread.run_sync(services.jobs.remove, workspace, name)

    @post("/{name:str}/pause", opt=allow(Role.developer), status_code=200)
    async def pause_job(
        self, services: NamedDependency[Services], workspace: FromPath[str], name: FromPath[str]
    ) -> Job:
        """Stop triggering the job until it is resumed."""
        job = await anyio.to_thread.run_sync(services.jobs.set_enabled, workspace, name, False)
        return msgspec.convert(job, Job)

    @post("/{name:str}/resume", opt=allow(Role.developer), status_code=200)
    async def resume_job(
        self, services: NamedDependency[Services], workspace: FromPath[str], name: FromPath[str]
    ) -> Job:
        """Trigger the job again."""
        job = await anyio.to_thread.run_sync(services.jobs.set_enabled, workspace, name, True)
        return msgspec.convert(job, Job)

    @post("/{name:str}/run", opt=allow(Role.developer), status_code=202)
    async def run_job(
        self,
        services: NamedDependency[Services],
        scheduler: NamedDependency[Scheduler],
        workspace: FromPath[str],
        name: FromPath[str],
    ) -> StartedJobRun:
        """Start the job now in the background; answers the job run id at once. 409 when the
        job is already running."""
        job = await anyio.to_thread.run_sync(services.jobs.get, workspace, name)
        return StartedJobRun(job_run=await scheduler.run_now(job, "manual"))


class JobRunController(Controller):
    path = "/v1/job-runs"
    tags = ["jobs"]

    @post(
        "/{job_run_id:str}/approve",
        opt=allow(Role.developer, scope=("job_run", "job_run_id")),
        status_code=200,
    )
    async def approve(
        self, scheduler: NamedDependency[Scheduler], job_run_id: FromPath[str]
    ) -> JobRun:
        """Deploy the version the job run holds for approval; answers the updated job run."""
        return msgspec.convert(await scheduler.approve(job_run_id), JobRun)
