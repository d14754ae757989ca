"""A process instance: one copy of a model in a spawned worker process (worker.py), behind the
same interface as a thread instance (instance.py: `start`, `close`, `batcher`, `runtime`,
`torch_threads`). Its serving thread takes batches from its own batcher, writes their decoded
inputs into its shared-memory arena (shm.py), sends the worker a small descriptor and waits for
the answer or the worker's end, whichever comes first.

A supervisor thread watches the worker. When it dies (killed, crashed, its pipe broken) the
batch it held is answered with InstanceCrashed (503, Retry-After), the crash is recorded as an
event, and a new worker is spawned, loaded and warmed; what was queued behind the batch waits
for it (at most `RESTART_WAIT` seconds, then 503 too). Closing answers everything queued, then
stops the worker and unlinks the arena."""

from __future__ import annotations

import logging
import multiprocessing
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from appliance.errors import ApplianceError
from appliance.serving.batcher import Batcher
from appliance.serving.instances.host import Deployed, InstanceHost
from appliance.serving.instances.shm import Arena
from appliance.serving.instances.worker import ANSWER, READY, WorkerSpec, main
from appliance.tasks import PredictInput, Prediction, Task

log = logging.getLogger("appliance.serving")

LOAD_TIMEOUT = 600.0
"""Seconds a worker may take to import, load and warm its model."""
RESTART_WAIT = 60.0
"""Seconds a batch queued behind a crash waits for the restarted worker before its 503."""
STOP_TIMEOUT = 30.0


class InstanceCrashed(ApplianceError):
    """The model instance holding this request stopped before answering; it is restarting."""

    http_status = 503


class InstanceUnavailable(ApplianceError):
    """The model instance this request queued on could not be restarted in time."""

    http_status = 503


class RemoteRuntime:
    """What the server reads of a runtime whose model lives in workers: its task, device and
    readiness (some instance of the group has a worker up). Predictions go through the
    batchers."""

    def __init__(self, task: Task):
        self.task = task
        self.device = "cpu"
        self.serving_backend = "torch"
        self.ready = False
        self._up: set[int] = set()
        self._lock = threading.Lock()

    def mark(self, index: int, up: bool) -> None:
        with self._lock:
            (self._up.add if up else self._up.discard)(index)
            self.ready = bool(self._up)

    def load(self) -> None:
        raise RuntimeError("a process instance's model is loaded in its worker")

    def predict(self, inputs: Sequence[PredictInput]) -> list[Prediction]:
        raise RuntimeError("a process instance predicts through its batcher")

    def unload(self) -> None:
        raise RuntimeError("a process instance's model is unloaded by closing it")


@dataclass
class _Worker:
    process: BaseProcess
    conn: Connection
    pid: int
    torch_threads: int
    device: str
    backend: str
    dead: bool = False


class ProcessInstance:
    def __init__(
        self,
        spec: WorkerSpec,
        runtime: RemoteRuntime,
        batcher: Batcher[PredictInput, Prediction],
        name: str,
        host: InstanceHost,
        deployed: Deployed,
        index: int = 0,
    ):
        self.runtime = runtime
        self.batcher = batcher
        self.torch_threads = 0
        self.index = index
        self._spec = spec
        self._name = name
        self._host = host
        self._deployed = deployed
        self._context = multiprocessing.get_context("spawn")  # never fork torch's threads
        self._arena = Arena()
        self._changed = threading.Condition()
        self._worker: _Worker | None = None
        self._restarting = False
        self._sent: tuple[_Worker, int] | None = None
        self._stopping = False
        self._wake_r, self._wake_w = multiprocessing.Pipe(duplex=False)
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._supervisor = threading.Thread(
            target=self._supervise, name=f"{name}-supervisor", daemon=True
        )

    # -- the instance interface ------------------------------------------------------------

    def start(self) -> None:
        """Blocking: spawn the worker and wait until its model is loaded and warm; raises what
        loading raised (nothing is left running then)."""
        try:
            self._worker = self._spawn()
        except BaseException:
            self._release()
            raise
        self.torch_threads = self._worker.torch_threads
        self.runtime.device = self._worker.device
        self.runtime.serving_backend = self._worker.backend
        self.runtime.mark(self.index, True)
        self._thread.start()
        self._supervisor.start()

    def close(self, timeout: float | None = None) -> None:
        """Answer everything queued, stop the worker, unlink the arena."""
        self.batcher.close()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def pid(self) -> int | None:
        """The current worker's process id (None while it restarts)."""
        worker = self._worker
        return worker.pid if worker is not None and not worker.dead else None

    @property
    def available(self) -> bool:
        worker = self._worker
        return worker is not None and not worker.dead

    # -- the serving thread ----------------------------------------------------------------

    def _serve(self) -> None:
        try:
            self.batcher.serve(self._predict)
        finally:
            with self._changed:
                self._stopping = True
                self._changed.notify_all()
            self._wake_w.send(None)
            self._supervisor.join()
            worker = self._worker
            self.runtime.mark(self.index, False)
            if worker is not None:
                self._stop(worker)
            self._release()

    def _predict(self, inputs: Sequence[PredictInput]) -> list[Prediction]:
        worker = self._current()
        batch = self._arena.pack(inputs)
        self._sent = (worker, len(inputs))
        try:
            worker.conn.send(batch)
            ready = wait([worker.conn, worker.process.sentinel])
            if worker.conn not in ready and not worker.conn.poll():
                raise EOFError  # the worker ended without answering
            kind, payload = worker.conn.recv()
        except (EOFError, OSError):
            self._lost(worker)
            raise InstanceCrashed(
                f"model instance {self.index} of endpoint '{self._deployed.endpoint}' stopped "
                "while answering this request and is restarting; retry shortly"
            ) from None
        self._sent = None
        if kind != ANSWER:
            raise payload
        return list(payload)

    def _current(self) -> _Worker:
        with self._changed:
            self._changed.wait_for(
                lambda: self.available or not self._restarting, timeout=RESTART_WAIT
            )
            worker = self._worker
            if worker is None or worker.dead:
                raise InstanceUnavailable(
                    f"model instance {self.index} of endpoint '{self._deployed.endpoint}' "
                    "stopped and is not back yet; retry shortly"
                )
            return worker

    def _lost(self, worker: _Worker) -> None:
        """Mark `worker` dead (and make sure it is: a worker whose pipe broke is killed, so its
        supervisor sees it end)."""
        with self._changed:
            if worker.dead:
                return
            worker.dead = True
            self._restarting = True
        self.runtime.mark(self.index, False)
        worker.process.kill()

    # -- the supervisor --------------------------------------------------------------------

    def _supervise(self) -> None:
        while True:
            worker = self._worker
            assert worker is not None
            wait([worker.process.sentinel, self._wake_r])
            if self._stopping:
                return
            if worker.process.is_alive():
                continue
            self._lost(worker)
            worker.process.join()
            worker.conn.close()
            sent = self._sent
            in_flight = sent[1] if sent is not None and sent[0] is worker else 0
            log.warning(
                "model instance %s of %s (pid %s) ended with %s; restarting it",
                self.index, self._deployed.endpoint, worker.pid, worker.process.exitcode,
            )  # fmt: skip
            self._record(
                "instance_crashed", instance=self.index, pid=worker.pid,
                exitcode=worker.process.exitcode, in_flight=in_flight, restarting=True,
            )  # fmt: skip
            if not self._restart():
                return

    def _restart(self) -> bool:
        """Spawn workers until one loads (waiting longer after each failure); False when the
        instance is closing instead."""
        delay = 1.0
        while not self._stopping:
            try:
                worker = self._spawn()
            except Exception as exc:  # recorded, and tried again
                with self._changed:
                    self._restarting = False  # what is queued is answered 503 meanwhile
                    self._changed.notify_all()
                self._record("instance_restart_failed", instance=self.index, error=str(exc))
                if self._wake_r.poll(delay):
                    return False
                delay = min(delay * 2, 30.0)
                with self._changed:
                    self._restarting = True
                continue
            with self._changed:
                self._worker = worker
                self._restarting = False
                self._changed.notify_all()
            self.runtime.mark(self.index, True)
            self._record("instance_restarted", instance=self.index, pid=worker.pid)
            return True
        return False

    def _record(self, kind: str, **detail: Any) -> None:
        try:
            self._host.record(self._deployed, kind, **detail)
        except Exception:  # an event must not stop the instance's recovery
            log.exception("recording %s for %s failed", kind, self._deployed.endpoint)

    # -- workers ---------------------------------------------------------------------------

    def _spawn(self) -> _Worker:
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=main, args=(child, self._spec), name=self._name, daemon=True
        )
        process.start()
        child.close()
        kind: str = "failed"
        payload: Any = f"the worker exited with {process.exitcode} while loading"
        try:
            if parent in wait([parent, process.sentinel], timeout=LOAD_TIMEOUT):
                kind, payload = parent.recv()
            elif process.is_alive():
                payload = f"the worker did not load its model in {LOAD_TIMEOUT:.0f} s"
        except (EOFError, OSError):
            process.join(5)
            payload = f"the worker exited with {process.exitcode} while loading"
        if kind != READY:
            process.kill()
            process.join()
            parent.close()
            if isinstance(payload, BaseException):
                raise payload
            raise RuntimeError(str(payload))
        return _Worker(
            process, parent, int(payload["pid"]), int(payload["torch_threads"]),
            str(payload["device"]), str(payload["backend"]),
        )  # fmt: skip

    def _stop(self, worker: _Worker) -> None:
        if not worker.dead:
            try:
                worker.conn.send(None)
            except OSError:
                pass
            worker.process.join(STOP_TIMEOUT)
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join()
        worker.conn.close()

    def _release(self) -> None:
        self._arena.close()
        self._wake_r.close()
        self._wake_w.close()
