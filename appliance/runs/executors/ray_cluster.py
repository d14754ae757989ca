"""The Ray executor: the run's training is a task on a Ray cluster.

The run's child process is the Ray driver, so the run is a Ray job of its own (its job id is
recorded on the run). No shared filesystem is assumed: the dataset version's files, the recipe's
code and the base model travel in the job's working directory, and the appliance package as a
py_module, through Ray's runtime environment; the cluster caches both by content, so a second
run on the same dataset version uploads nothing new. The task streams its progress, metrics and
log lines back as a Ray streaming generator, and its last item is the trained folder as a tar.
Calibration, registration and the drift profile then happen here, as for a local run.

Ray is imported only here and in ray_worker.py, and only when a run uses this executor.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import signal
import socket
import tarfile
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import appliance
from appliance.errors import ApplianceError, InvalidInput, Unavailable
from appliance.recipes.context import Reporter
from appliance.runs.executors.base import Cancelled, Trained, TrainJob

RAY_MISSING = "the ray executor needs Ray on this machine: pip install 'appliance[ray]'"
NO_ADDRESS = (
    "the ray executor needs the cluster's address: --ray-address HOST:PORT (its GCS, e.g. "
    "127.0.0.1:6379) or ray://HOST:10001, or RAY_ADDRESS in the environment"
)
CONNECT_TIMEOUT_S = 3.0
POLL_S = 0.5
PACKAGE = "ray-package"


def require_ray() -> ModuleType:
    try:
        import ray
    except ImportError:
        raise InvalidInput(RAY_MISSING) from None
    return ray


def resolve_address(address: str | None) -> str:
    value = (address or os.environ.get("RAY_ADDRESS", "")).strip()
    if not value:
        raise InvalidInput(NO_ADDRESS)
    _host_port(value)  # refuses what is no address
    return value


def check_reachable(address: str) -> None:
    """One clear line when nothing answers there: ray.init itself retries for minutes."""
    if address == "auto":
        return
    host, port = _host_port(address)
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise Unavailable(
            f"no Ray cluster answers at {address} ({reason.lower()}); start one there with "
            "`ray start --head`, or give the right --ray-address"
        ) from None


def resources(params: dict[str, Any]) -> dict[str, float]:
    """What the task asks the cluster for, from the recipe's params: num_cpus and num_gpus where
    the recipe declares them, else its `threads` (CPUs, at least 1) and its `device` (a GPU for
    cuda)."""
    cpus = params.get("num_cpus") or params.get("threads") or 1
    gpus = params.get("num_gpus")
    if gpus is None:
        gpus = 1 if str(params.get("device", "")).startswith("cuda") else 0
    return {"num_cpus": float(cpus), "num_gpus": float(gpus)}


class RayExecutor:
    name = "ray"

    def __init__(self, address: str):
        self.address = address

    def train(self, job: TrainJob, report: Reporter) -> Trained:
        from appliance.runs.executors.ray_worker import train_remote

        ray = require_ray()
        check_reachable(self.address)
        root = job.output_dir.parent / PACKAGE
        _package(job, root)
        report.log(
            f"submitting to the Ray cluster at {self.address}: dataset, recipe"
            f"{' and base model' if job.base_model else ''} ({_megabytes(root):.1f} MB)"
        )
        stop = threading.Event()
        package = str(Path(appliance.__file__).parent)
        ray.init(
            address=self.address,
            runtime_env={"working_dir": str(root), "py_modules": [package]},
            namespace="appliance",
            logging_level=logging.WARNING,
            log_to_driver=True,
        )
        # ray.init put its own SIGTERM handler in place, which exits at once; ours stops the task.
        previous = {sig: signal.signal(sig, lambda s, f: stop.set()) for sig in _SIGNALS}
        try:
            job_id = ray.get_runtime_context().get_job_id()
            job.note(address=self.address, job_id=job_id)
            wanted = resources(job.params)
            _check_fits(ray, wanted)
            report.log(f"Ray job {job_id}: asking for {_shown(wanted)}")
            task = ray.remote(train_remote).options(
                name=f"appliance-run-{job.run_id}", max_retries=0, **wanted
            )
            payload = {
                "run_id": job.run_id, "train_rows": job.train_rows, "eval_rows": job.eval_rows,
                "params": job.params, "seed": job.seed, "base_model": job.base_model is not None,
            }  # fmt: skip
            return _follow(ray, task.remote(payload), job, report, stop)
        finally:
            ray.shutdown()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            shutil.rmtree(root, ignore_errors=True)


_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _follow(ray: ModuleType, stream: Any, job: TrainJob, report: Reporter, stop: Any) -> Trained:
    """Relay the task's stream into the run's record until its result; a cancel (SIGTERM to
    this process) stops the task, waiting in short slices so the signal is seen at once."""
    worker: dict[str, Any] = {}
    while True:
        if stop.is_set():
            ray.cancel(stream, force=True)
            report.log("the Ray task was stopped")
            raise Cancelled
        ready, _ = ray.wait([stream], timeout=POLL_S)
        if not ready:
            continue
        try:
            kind, value = ray.get(next(stream))
        except StopIteration:
            raise ApplianceError("the Ray task ended without sending the trained model") from None
        except ray.exceptions.RayTaskError as exc:
            print(str(exc), flush=True)  # the remote traceback, for the run's log
            cause = getattr(exc, "cause", None)
            raise (cause if isinstance(cause, Exception) else _lost(exc, worker)) from None
        except ray.exceptions.RayError as exc:
            raise _lost(exc, worker) from None
        if kind == "started":
            worker = value
            job.note(**value)
            report.log(f"training on the Ray worker pid {value['worker_pid']} on {value['host']}")
        elif kind == "progress":
            report.progress(value["step"], value["total"], **value["metrics"])
        elif kind == "metric":
            report.metric(*value)
        elif kind == "log":
            report.log(value)
        elif kind == "result":
            # The worker's CPU time: the child's own cpu_seconds count only this driver.
            report.metric("ray_cpu_seconds", value["cpu_seconds"])
            _unpack(value["model"], job.output_dir)
            return Trained(value["metrics"], value["train_seconds"])


def _lost(exc: Exception, worker: dict[str, Any]) -> ApplianceError:
    where = f" (pid {worker['worker_pid']} on {worker['host']})" if worker else ""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ApplianceError(f"the Ray worker training this run died{where}: {first}")


def _check_fits(ray: ModuleType, wanted: dict[str, float]) -> None:
    """Refuse at once what no node of the cluster could ever offer (it would wait for ever)."""
    total = ray.cluster_resources()
    have = {"num_cpus": total.get("CPU", 0.0), "num_gpus": total.get("GPU", 0.0)}
    if any(wanted[key] > have[key] for key in wanted):
        raise InvalidInput(
            f"the Ray cluster has {_shown(have)}; this run asks for {_shown(wanted)} (from the "
            "recipe's threads and device params, or num_cpus and num_gpus)"
        )


def _shown(amounts: dict[str, float]) -> str:
    return f"{amounts['num_cpus']:g} CPUs and {amounts['num_gpus']:g} GPUs"


def _package(job: TrainJob, root: Path) -> None:
    """The job's working directory: dataset/, recipe/ and base/ (hard links where possible)."""
    shutil.rmtree(root, ignore_errors=True)
    _link_tree(job.dataset_dir, root / "dataset")
    shutil.copytree(
        job.spec.folder, root / "recipe", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    if job.base_model is not None:
        _link_tree(job.base_model, root / "base")


def _link_tree(source: Path, target: Path) -> None:
    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, target, copy_function=link, symlinks=False)


def _megabytes(root: Path) -> float:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 1e6


def _unpack(data: bytes, output_dir: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        archive.extractall(output_dir, filter="data")


def _host_port(address: str) -> tuple[str, int]:
    if address == "auto":
        return "", 0
    client = address.startswith("ray://")
    rest = address.removeprefix("ray://")
    host, _, port = rest.rpartition(":")
    if not host:
        host, port = rest, ("10001" if client else "6379")
    if not host or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise InvalidInput(f"'{address}' is no Ray address; give HOST:PORT or ray://HOST:PORT")
    return host.strip("[]"), int(port)
