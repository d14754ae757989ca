"""Starting a run in a child process, and the handle every caller watches it through: its status
and progress, whether it is alive, its log, waiting, cancelling; and reaping runs whose process
died without a word. The child owns the run's record whichever executor trains it (in the child,
or on a Ray cluster: appliance/runs/executors/). The parent never imports torch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from appliance.errors import Conflict, InvalidInput, NotFound
from appliance.runs import executors
from appliance.runs.pipeline import library_versions
from appliance.runs.tracking import FINISHED
from appliance.services import Services

CHILD_MODULE = "appliance.runs.child"
CANCEL_GRACE_SECONDS = 30


@dataclass
class Execution:
    """A run's child process as the caller sees it. `start_run` returns one for the process it
    started (it can wait for it without leaving a zombie); `attach` makes one for any recorded
    run, from any process, by its pid and command line."""

    services: Services
    run_id: str
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @classmethod
    def attach(cls, services: Services, run_id: str) -> Execution:
        services.runs.get(run_id)  # NotFound for an unknown run
        return cls(services, run_id)

    def status(self) -> dict[str, Any]:
        """The run's record: status, progress (step, total), error, executor and its ref."""
        return self.services.runs.get(self.run_id)

    def alive(self) -> bool:
        """Whether its child process still runs (a process this one started is reaped here)."""
        if self.process is not None:
            return self.process.poll() is None
        return _child_process(self.status()) is not None

    def logs(self, tail: int = 0) -> str:
        """The child's output (with a Ray executor, the remote task's lines too); `tail`: the
        last lines only, read without holding the whole file."""
        path = self.status()["log_path"]
        if not path or not Path(path).is_file():
            raise NotFound(f"run {self.run_id} has no log (it was logged from Python, not started)")
        with Path(path).open(errors="replace") as lines:
            return "".join(deque(lines, maxlen=tail) if tail > 0 else lines)

    def wait(
        self, on_poll: Callable[[dict[str, Any]], None] | None = None, interval: float = 0.5
    ) -> dict[str, Any]:
        """Wait for the child, calling `on_poll(run)` every `interval` when given; Ctrl-C cancels
        it cleanly. A child that ended without reporting leaves the run failed with how."""
        if self.process is None:
            while self.alive():
                if on_poll is not None:
                    on_poll(self.status())
                time.sleep(interval)
            return reap_runs(self.services, self.run_id) or self.status()
        try:
            while on_poll is not None and self.process.poll() is None:
                on_poll(self.status())
                time.sleep(interval)
            code = self.process.wait()
        except KeyboardInterrupt:
            _terminate(self.process)
            code = self.process.wait()
        run = self.status()
        if run["status"] not in FINISHED:
            reason = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
            self.services.runs.set_status(
                self.run_id, "failed", f"the training process {reason} without reporting"
            )
            run = self.status()
        return run

    def cancel(self) -> dict[str, Any]:
        """Stop the run (a Ray executor's child stops its Ray task first); 409 once finished."""
        run = self.status()
        if run["status"] in FINISHED:
            raise Conflict(f"run {self.run_id} already finished as {run['status']}")
        process = _child_process(run)
        if process is not None:
            process.terminate()  # the child records `cancelled` itself once its handler is set
            try:
                process.wait(CANCEL_GRACE_SECONDS)
            except psutil.TimeoutExpired:
                process.kill()
        if self.process is not None:
            self.process.poll()  # reaped: no zombie left behind
        try:  # killed before it could say so (still starting, or past the grace time)
            self.services.runs.set_status(self.run_id, "cancelled", "cancelled by the user")
        except Conflict:
            pass  # the child recorded it
        return self.status()


PARENT_ENV = "APPLIANCE_RUN_PARENT_PID"


def start_run(
    services: Services,
    workspace: str,
    recipe: str,
    dataset: str,
    overrides: dict[str, Any],
    model_name: str | None = None,
    die_with_parent: bool = False,
    executor: str = "local",
    ray_address: str | None = None,
) -> Execution:
    """Record a queued run with its lineage and start its child process. With
    `die_with_parent` (runs the server's scheduler starts) the child is killed when this process
    dies, so a `kill -9` of the appliance leaves no orphan training: the next start fails it.
    `executor` says where it trains (`ray`: on the cluster at `ray_address` or RAY_ADDRESS),
    checked before anything is recorded."""
    spec = services.recipes.get(workspace, recipe)
    params = spec.resolve_params(overrides)
    version = services.datasets.get(workspace, dataset)
    executor_ref = executors.prepare(executor, ray_address)
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
        executor=executor,
        executor_ref=executor_ref,
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
    return Execution(services, run["id"], process)


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
