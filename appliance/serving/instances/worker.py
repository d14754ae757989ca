"""A process instance's worker: the spawned process that loads one copy of a model and answers
its instance's batches. It rebuilds the runtime from what pickles (the settings of the home, the
version row, the deploy options), loads and warms it with torch limited to its share of the
cores, says it is ready, then answers each batch descriptor (inputs read from shared memory,
shm.py) until told to stop or its parent goes away."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from appliance.serving.options import DeployOptions
from appliance.settings import Settings

READY, FAILED, ANSWER, ERROR = "ready", "failed", "answer", "error"


@dataclass(frozen=True)
class WorkerSpec:
    settings: Settings
    version: dict[str, Any]
    options: DeployOptions
    warmup: Callable[[Any], None]
    torch_threads: int
    """Torch's intra-op threads in the worker: its share of the cores."""


def main(conn: Connection, spec: WorkerSpec) -> None:
    """The worker process's entry point (multiprocessing's spawn target)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the server, which stops us
    try:
        runtime, threads = _load(spec)
    except BaseException as exc:  # the parent reports it as the deploy's error
        conn.send((FAILED, _picklable(exc)))
        return
    ready = {"pid": os.getpid(), "torch_threads": threads, "device": runtime.device,
             "backend": runtime.serving_backend}  # fmt: skip
    conn.send((READY, ready))
    _serve(conn, runtime)


def _load(spec: WorkerSpec) -> tuple[Any, int]:
    import torch

    from appliance.runtimes.choose import runtime_for
    from appliance.services import Services

    if spec.torch_threads > 0:
        torch.set_num_threads(spec.torch_threads)
    services = Services(spec.settings)
    try:
        runtime = runtime_for(services, spec.version, spec.options)
    finally:
        services.close()
    runtime.load()
    spec.warmup(runtime)
    return runtime, int(torch.get_num_threads())


def _serve(conn: Connection, runtime: Any) -> None:
    from appliance.serving.instances.shm import ArenaReader

    reader = ArenaReader()
    try:
        while True:
            try:
                batch = conn.recv()
            except (EOFError, OSError):
                return  # the parent is gone
            if batch is None:
                return
            try:
                answer: tuple[str, Any] = (ANSWER, runtime.predict(reader.read(batch)))
            except Exception as exc:  # the batch's requests get the model's error
                answer = (ERROR, _picklable(exc))
            conn.send(answer)
    finally:
        reader.close()
        runtime.unload()


def _picklable(exc: BaseException) -> BaseException:
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc
