"""Dynamic batching: requests queue up; the thread that serves the model (its instance, see
instance.py) takes up to `max_batch_size` of them (waiting at most `max_batch_wait_ms` after the
first), runs one forward pass, and answers each request's future. The asyncio loop only awaits
futures; it never runs the model."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")


class BatcherClosed(RuntimeError):
    """The batcher stopped before this request could run."""


@dataclass
class _Request(Generic[In]):
    item: In
    future: Future[Any]
    queued_at: float = field(default_factory=time.perf_counter)


@dataclass
class BatchTiming:
    """What a request's answer carries about its trip: for latency splits and metrics."""

    queue_ms: float
    inference_ms: float
    batch_size: int


class Batcher(Generic[In, Out]):
    """The queue in front of a model. It owns no thread: `serve` runs on the thread that owns
    the model, so every torch call of a model happens on one thread."""

    def __init__(self, max_batch_size: int = 8, max_batch_wait_ms: float = 5.0):
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        self.max_batch_size = max_batch_size
        self.max_batch_wait = max_batch_wait_ms / 1000
        self._queue: queue.SimpleQueue[_Request[In] | None] = queue.SimpleQueue()
        self._closed = False
        self._lock = threading.Lock()
        self.batches = 0
        self.requests = 0
        self._last_batch_size = 0

    def submit(self, item: In) -> Future[tuple[Out, BatchTiming]]:
        """Queue one request; the future gets (output, timing) or the model's exception."""
        future: Future[tuple[Out, BatchTiming]] = Future()
        with self._lock:
            if self._closed:
                raise BatcherClosed("this model is being unloaded")
            self._queue.put(_Request(item, future))
        return future

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def close(self) -> None:
        """Stop taking requests; `serve` answers every queued one, then returns."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)

    def serve(self, predict: Callable[[Sequence[In]], Sequence[Out]]) -> None:
        """Answer batches with `predict` on the calling thread until `close`, then the rest."""
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            # Wait for company only while traffic is batching (the last batch had some, or more
            # are queued): a lone request at low load runs at once instead of paying the wait.
            busy = self._last_batch_size > 1 or not self._queue.empty()
            deadline = time.perf_counter() + (self.max_batch_wait if busy else 0.0)
            while len(batch) < self.max_batch_size:
                remaining = deadline - time.perf_counter()
                try:
                    if remaining > 0:
                        nxt = self._queue.get(timeout=remaining)
                    else:
                        nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True  # answer what we hold, then drain the rest below
                    break
                batch.append(nxt)
            self._run(batch, predict)
        self._drain(predict)

    def _drain(self, predict: Callable[[Sequence[In]], Sequence[Out]]) -> None:
        pending = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                pending.append(item)
        for start in range(0, len(pending), self.max_batch_size):
            self._run(pending[start : start + self.max_batch_size], predict)

    def _run(
        self, batch: list[_Request[In]], predict: Callable[[Sequence[In]], Sequence[Out]]
    ) -> None:
        live = [r for r in batch if r.future.set_running_or_notify_cancel()]
        if not live:
            return
        started = time.perf_counter()
        try:
            outputs = predict([r.item for r in live])
            if len(outputs) != len(live):
                raise RuntimeError(f"the model answered {len(outputs)} of {len(live)} inputs")
        except BaseException as exc:
            for request in live:
                request.future.set_exception(exc)
            return
        finished = time.perf_counter()
        self._last_batch_size = len(live)
        self.batches += 1
        self.requests += len(live)
        for request, output in zip(live, outputs, strict=True):
            timing = BatchTiming(
                queue_ms=(started - request.queued_at) * 1000,
                inference_ms=(finished - started) * 1000,
                batch_size=len(live),
            )
            request.future.set_result((output, timing))
