"""A model instance: one loaded copy of a model and the one thread that does all of its torch
work. The thread loads the model, warms it, serves its batcher until the batcher is closed, then
unloads the model and ends.

Why one thread: torch's CPU kernels run on an OpenMP team owned by the thread that calls them,
and a team stays alive as long as its thread does. When a thread that once ran the model (a
deploy's loader, say) stays alive beside the one that predicts, libgomp manages more threads than
there are cores and stops spinning between parallel regions: on 2 cores a captioner then
predicted in 33 ms instead of 11 (docs/benchmarks.md). Ending the thread with its model frees the
team, so a retired model leaves nothing behind.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future

from appliance.serving.batcher import Batcher
from appliance.serving.runtime import ModelRuntime
from appliance.tasks import PredictInput, Prediction

_threads_lock = threading.Lock()
_threads_set = False


class ModelInstance:
    def __init__(
        self,
        runtime: ModelRuntime,
        warmup: Callable[[ModelRuntime], None],
        batcher: Batcher[PredictInput, Prediction],
        name: str,
        torch_threads: int = 0,
        share: bool = False,
    ):
        self.runtime = runtime
        self.batcher = batcher
        self.torch_threads = 0
        """Torch's intra-op threads as this instance found them after loading (0 before)."""
        self._warmup = warmup
        self._wanted_threads = torch_threads
        self._share = share
        """Set `torch_threads` on this thread even when the process already set its count: an
        instance group's share of the cores (serving/instances/build.py)."""
        self._started: Future[None] = Future()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    def start(self) -> None:
        """Blocking: load and warm the model on the instance's thread; raises what loading
        raised (the thread has then ended)."""
        self._thread.start()
        self._started.result()

    def close(self, timeout: float | None = None) -> None:
        """Answer everything queued, unload the model, end the thread."""
        self.batcher.close()
        self._thread.join(timeout)

    def _main(self) -> None:
        try:
            if self._share:
                self.torch_threads = share_torch_threads(self._wanted_threads)
            else:
                self.torch_threads = set_torch_threads(self._wanted_threads)
            self.runtime.load()
            self._warmup(self.runtime)
        except BaseException as exc:
            self.runtime.unload()
            self._started.set_exception(exc)
            return
        self._started.set_result(None)
        try:
            self.batcher.serve(self.runtime.predict)
        finally:
            self.runtime.unload()


def set_torch_threads(wanted: int) -> int:
    """Torch's intra-op thread count: set to `wanted` by the first instance of the process
    (0 keeps torch's default, one per physical core) and left alone afterwards, since changing
    it under a serving model costs that model its warm thread team. Returns the count in use."""
    global _threads_set
    import torch

    with _threads_lock:
        if not _threads_set:
            if wanted > 0:
                torch.set_num_threads(wanted)
            _threads_set = True
    return int(torch.get_num_threads())


def share_torch_threads(wanted: int) -> int:
    """Torch's intra-op threads for the calling thread's OpenMP team: `wanted` (torch keeps
    the count per thread once a thread has run, so each instance of a group sets its own)."""
    global _threads_set
    import torch

    with _threads_lock:
        torch.set_num_threads(wanted)
        _threads_set = True
    return int(torch.get_num_threads())
