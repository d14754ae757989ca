"""What runs on the Ray worker: the recipe's train and evaluate on the job's copy of the files.

The working directory holds dataset/, recipe/ and base/ (ray_cluster.py packs them). The recipe
runs on a thread while the task yields what its reporter receives, as ("progress" | "metric" |
"log", value) items, and last ("result", {metrics, train_seconds, cpu_seconds, model: the
folder as a tar}).
An error in the recipe is raised from the task, so the driver fails the run with it."""

from __future__ import annotations

import io
import os
import queue
import shutil
import socket
import tarfile
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

from appliance.recipes.spec import read_recipe
from appliance.runs.executors.base import TrainJob
from appliance.runs.executors.local import train_here

SCRATCH = "appliance-run-"


def _sweep_scratch() -> None:
    """Remove the scratch folders of workers that died (a cancel or a crash kills the worker
    before its `finally` runs); each folder's name carries its worker's pid."""
    for folder in Path(tempfile.gettempdir()).glob(f"{SCRATCH}*-*"):
        pid = folder.name.removeprefix(SCRATCH).split("-", 1)[0]
        if pid.isascii() and pid.isdigit() and not psutil.pid_exists(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


class QueueReporter:
    """A Reporter whose calls become the task's stream items."""

    def __init__(self, events: queue.Queue[tuple[str, Any]]):
        self._events = events

    def progress(self, step: int, total: int, **metrics: float) -> None:
        self._events.put(("progress", {"step": step, "total": total, "metrics": metrics}))

    def metric(self, name: str, value: float, step: int = 0) -> None:
        self._events.put(("metric", (name, value, step)))

    def log(self, message: str) -> None:
        self._events.put(("log", message))


def train_remote(payload: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    import ray

    context = ray.get_runtime_context()
    yield "started", {"worker_pid": os.getpid(), "host": socket.gethostname(),
                      "node_id": context.get_node_id()}  # fmt: skip
    started = os.times()
    root = Path.cwd()
    _sweep_scratch()
    scratch = Path(tempfile.mkdtemp(prefix=f"{SCRATCH}{os.getpid()}-"))
    job = TrainJob(
        run_id=payload["run_id"],
        spec=read_recipe(root / "recipe"),
        dataset_dir=root / "dataset",
        train_rows=payload["train_rows"],
        eval_rows=payload["eval_rows"],
        params=payload["params"],
        seed=payload["seed"],
        output_dir=scratch / "model",
        base_model=root / "base" if payload["base_model"] else None,
        note=lambda **fields: None,
    )
    job.output_dir.mkdir()
    events: queue.Queue[tuple[str, Any]] = queue.Queue()

    def work() -> None:
        try:
            events.put(("done", train_here(job, QueueReporter(events))))
        except BaseException as exc:  # raised again from the task below
            events.put(("error", exc))

    threading.Thread(target=work, name="train", daemon=True).start()
    try:
        while True:
            kind, value = events.get()
            if kind == "error":
                raise value
            if kind == "done":
                used = os.times()
                cpu = used.user + used.system - started.user - started.system
                result = {"metrics": value.metrics, "train_seconds": value.train_seconds,
                          "cpu_seconds": round(cpu, 3)}  # fmt: skip
                yield "result", {**result, "model": _tar(job.output_dir)}
                return
            yield kind, value
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _tar(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:") as archive:
        for path in sorted(folder.rglob("*")):
            archive.add(path, arcname=str(path.relative_to(folder)), recursive=False)
    return buffer.getvalue()
