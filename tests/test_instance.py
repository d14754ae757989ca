"""Model instances: every call into a model (load, warm-up, predict, unload) happens on the
instance's own thread, which ends with the model; the pool retires the old thread on a swap."""

import threading
from collections.abc import Sequence

import pytest

from appliance.serving.batcher import Batcher
from appliance.serving.instance import ModelInstance
from appliance.serving.options import DeployOptions
from appliance.serving.pool import ModelPool
from appliance.serving.runtime import ModelRuntime
from appliance.tasks import PredictInput, Prediction


class ThreadRecordingRuntime:
    """A ModelRuntime that answers the thread it ran on, and remembers each call's thread."""

    def __init__(self, fail_load: bool = False) -> None:
        self.ready = False
        self.device = "cpu"
        self.calls: list[tuple[str, threading.Thread]] = []
        self._fail_load = fail_load

    def load(self) -> None:
        self.calls.append(("load", threading.current_thread()))
        if self._fail_load:
            raise OSError("no weights in the folder")
        self.ready = True

    def predict(self, inputs: Sequence[PredictInput]) -> list[Prediction]:
        self.calls.append(("predict", threading.current_thread()))
        return [Prediction({"description": threading.current_thread().name}, 1.0) for _ in inputs]

    def unload(self) -> None:
        self.calls.append(("unload", threading.current_thread()))
        self.ready = False


def warm(runtime: ModelRuntime) -> None:
    runtime.predict([PredictInput({})])


def test_load_warmup_predict_and_unload_run_on_the_instance_thread() -> None:
    runtime = ThreadRecordingRuntime()
    instance = ModelInstance(runtime, warm, Batcher(4, 0), name="infer-test")
    instance.start()
    assert runtime.ready
    prediction, _ = instance.batcher.submit(PredictInput({})).result(5)
    assert prediction.output["description"] == "infer-test"
    instance.close(5)
    kinds = [kind for kind, _ in runtime.calls]
    assert kinds == ["load", "predict", "predict", "unload"]
    threads = {thread for _, thread in runtime.calls}
    assert len(threads) == 1 and threads != {threading.current_thread()}
    assert not threads.pop().is_alive()  # the thread ended with its model
    assert instance.torch_threads >= 1


def test_a_failed_load_raises_on_start_and_ends_the_thread() -> None:
    runtime = ThreadRecordingRuntime(fail_load=True)
    instance = ModelInstance(runtime, warm, Batcher(4, 0), name="infer-broken")
    with pytest.raises(OSError, match="no weights"):
        instance.start()
    assert [kind for kind, _ in runtime.calls] == ["load", "unload"]
    assert not runtime.calls[0][1].is_alive()


def test_a_swap_leaves_only_the_new_model_thread_alive() -> None:
    runtimes: list[ThreadRecordingRuntime] = []

    def make(version: dict, options: DeployOptions) -> ThreadRecordingRuntime:
        runtimes.append(ThreadRecordingRuntime())
        return runtimes[-1]

    pool = ModelPool(make, warm)
    options = DeployOptions(device="cpu", max_batch_wait_ms=0)
    try:
        for number in (1, 2):
            pool.deploy("ws", "ep", {"id": str(number), "version": number}, options)
        _, future = pool.submit("ws", "ep", PredictInput({}))
        assert future.result(5)[0].output["description"] == "infer-ep"
        first, second = (r.calls[0][1] for r in runtimes)
        assert not first.is_alive() and second.is_alive()
        assert [kind for kind, _ in runtimes[0].calls][-1] == "unload"
    finally:
        pool.close()
    assert not second.is_alive()
