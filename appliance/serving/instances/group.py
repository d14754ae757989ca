"""An instance group: the N loaded copies of one deployment's model (Triton's instance groups),
each with a batcher of its own, and the choice of which one takes a request: the available
instance with the fewest requests outstanding (queued or predicting), ties taken in turn. One
instance is served directly, exactly as before groups existed."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Protocol

from appliance.serving.batcher import Batcher, BatchTiming
from appliance.serving.runtime import ModelRuntime
from appliance.tasks import PredictInput, Prediction

Answer = Future[tuple[Prediction, BatchTiming]]


class Instance(Protocol):
    """What a group needs of an instance: a thread one (instance.py) or a process one."""

    batcher: Batcher[PredictInput, Prediction]
    torch_threads: int

    @property
    def runtime(self) -> ModelRuntime: ...

    def start(self) -> None: ...

    def close(self, timeout: float | None = None) -> None: ...


class InstanceGroup:
    def __init__(self, instances: Sequence[Instance], kind: str = "thread"):
        if not instances:
            raise ValueError("a group needs at least one instance")
        self.instances = list(instances)
        self.kind = kind
        self._outstanding = [0] * len(self.instances)
        self._turn = 0
        self._lock = threading.Lock()

    @property
    def runtime(self) -> ModelRuntime:
        return self.instances[0].runtime

    @property
    def torch_threads(self) -> int:
        return self.instances[0].torch_threads

    @property
    def depth(self) -> int:
        """Requests queued on every instance (not counting the batches being predicted)."""
        return sum(instance.batcher.depth for instance in self.instances)

    def start(self) -> None:
        """Blocking: load every instance; when one fails, the others are closed and its error
        raised. Thread instances load one after another: loading a model patches torch module
        globals for a while (transformers' empty-weights init), so two at once in one process
        break each other; worker processes load side by side."""
        if self.kind == "thread":
            for number, instance in enumerate(self.instances):
                try:
                    instance.start()
                except BaseException:
                    for started in self.instances[:number]:
                        started.close()
                    raise
            return
        errors: list[BaseException | None] = [None] * len(self.instances)

        def start(number: int) -> None:
            try:
                self.instances[number].start()
            except BaseException as exc:  # raised below, on the caller's thread
                errors[number] = exc

        starters = [
            threading.Thread(target=start, args=(n,), name=f"start-instance-{n}")
            for n in range(len(self.instances))
        ]
        for thread in starters:
            thread.start()
        for thread in starters:
            thread.join()
        failed = next((e for e in errors if e is not None), None)
        if failed is not None:
            for instance, error in zip(self.instances, errors, strict=True):
                if error is None:
                    instance.close()
            raise failed

    def submit(self, item: PredictInput) -> Answer:
        """Queue `item` on the least-loaded instance (BatcherClosed once the group closes)."""
        if len(self.instances) == 1:
            return self.instances[0].batcher.submit(item)
        number = self._pick()
        future = self.instances[number].batcher.submit(item)
        with self._lock:
            self._outstanding[number] += 1
        future.add_done_callback(lambda _: self._done(number))
        return future

    def _pick(self) -> int:
        count = len(self.instances)
        with self._lock:
            start = self._turn = (self._turn + 1) % count
            order = [(start + i) % count for i in range(count)]
            usable = [n for n in order if getattr(self.instances[n], "available", True)] or order
            return min(usable, key=lambda n: self._outstanding[n])

    def _done(self, number: int) -> None:
        with self._lock:
            self._outstanding[number] -= 1

    def close(self) -> None:
        """Stop taking requests everywhere, then answer what each instance queued and end it."""
        for instance in self.instances:
            instance.batcher.close()
        for instance in self.instances:
            instance.close()
