"""Starting a run in a child process, watching it, cancelling it, and reaping runs whose process
died without a word. The parent never imports torch: all of that happens in the child."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from appliance.errors import Conflict, InvalidInput, NotFound
from appliance.runs.pipeline import library_versions
from appliance.runs.tracking import FINISHED
from appliance.services import Services

CHILD_MODULE = "appliance.runs.child"
CANCEL_GRACE_SECONDS = 30


@dataclass
class Launch:
    run_id: str
    process: subprocess.Popen[bytes]


PARENT_ENV = "APPLIANCE_RUN_PARENT_PID"


def start_run(
    services: Services,
    workspace: str,
    recipe: str,
    dataset: str,
    overrides: dict[str, Any],
    model_name: str | None = None,
    die_with_parent: bool = False,
) -> Launch:
    """Record a queued run with its lineage and start its child process. With
    `die_with_parent` (runs the server's scheduler starts) the child is killed when this process
    dies, so a `kill -9` of the appliance leaves no orphan training: the next start fails it."""
    spec = services.recipes.get(workspace, recipe)
    params = spec.resolve_params(overrides)
    version = services.datasets.get(workspace, dataset)
    parent_id = None
    if params.get("base_model"):
        parent_id, params["base_model"] = _resolve_base(services, workspace, params["base_model"])
    run = services.runs.create(
        workspace,
        recipe=spec.name,
        params=params,
        status="queued",
        model_name=model_name or spec.name,
        dataset_id=version["dataset_id"],
        dataset_digest=version["digest"],
        code_hash=spec.code_hash(),
        seed=int(params.get("seed", 0)),
        library_versions=library_versions(),
        parent_model_version_id=parent_id,
    )
    log_path = services.settings.home / "logs" / "runs" / f"{run['id']}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "APPLIANCE_HOME": str(services.settings.home), "PYTHONUNBUFFERED": "1"}
    if die_with_parent:
        env[PARENT_ENV] = str(os.getpid())
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", CHILD_MODULE, run["id"]],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # a terminal's Ctrl-C reaches the parent, which forwards it
        )
    services.runs.update(run["id"], log_path=str(log_path), pid=process.pid)
    return Launch(run["id"], process)


def wait_run(
    services: Services,
    launch: Launch,
    on_poll: Callable[[dict[str, Any]], None] = lambda run: None,
    interval: float = 0.5,
) -> dict[str, Any]:
    """Wait for the child, calling `on_poll(run)` as it goes; Ctrl-C cancels it cleanly."""
    try:
        while launch.process.poll() is None:
            on_poll(services.runs.get(launch.run_id))
            time.sleep(interval)
    except KeyboardInterrupt:
        _terminate(launch.process)
    code = launch.process.wait()
    run = services.runs.get(launch.run_id)
    if run["status"] not in FINISHED:
        reason = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
        services.runs.set_status(
            launch.run_id, "failed", f"the training process {reason} without reporting"
        )
        run = services.runs.get(launch.run_id)
    return run


def cancel_run(services: Services, run_id: str) -> dict[str, Any]:
    run = services.runs.get(run_id)
    if run["status"] in FINISHED:
        raise Conflict(f"run {run_id} already finished as {run['status']}")
    process = _child_process(run)
    if process is not None:
        process.terminate()  # the child records `cancelled` itself once its handler is set
        try:
            process.wait(CANCEL_GRACE_SECONDS)
        except psutil.TimeoutExpired:
            process.kill()
    try:  # killed before it could say so (still starting, or past the grace time)
        services.runs.set_status(run_id, "cancelled", "cancelled by the user")
    except Conflict:
        pass  # the child recorded it
    return services.runs.get(run_id)


def reap_runs(services: Services, run_id: str | None = None) -> dict[str, Any] | None:
    """Mark runs left queued or running by a process that no longer exists as failed."""
    rows = services.registry.query(
        "SELECT id, pid, status FROM runs WHERE status IN ('queued', 'running')"
        + (" AND id = ?" if run_id else ""),
        (run_id,) if run_id else (),
    )
    for row in rows:
        if row["pid"] and _child_process(row) is None:
            try:
                services.runs.set_status(
                    row["id"], "failed",
                    f"the training process (pid {row['pid']}) ended without reporting; "
                    "it was killed or crashed",
                )  # fmt: skip
            except Conflict:
                pass  # it finished on its own meanwhile
    return services.runs.get(run_id) if run_id else None


def _child_process(run: dict[str, Any]) -> psutil.Process | None:
    """The run's live child process, checked by its command line (pids get reused)."""
    if not run.get("pid"):
        return None
    try:
        process = psutil.Process(run["pid"])
        cmdline = process.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    if CHILD_MODULE in cmdline and run["id"] in cmdline and process.status() != "zombie":
        return process
    return None


def _terminate(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(CANCEL_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()


def _resolve_base(services: Services, workspace: str, value: str) -> tuple[str | None, str]:
    """`base_model` is a registered `NAME@VERSION` (recorded as the parent) or a local folder."""
    folder = Path(value).expanduser()
    if folder.is_dir():
        return None, str(folder.resolve())
    try:
        version = services.models.get(workspace, value)
    except NotFound:
        raise InvalidInput(
            f"base_model '{value}' is neither a folder nor a registered model version"
        ) from None
    return version["id"], str(services.models.folder(version))
