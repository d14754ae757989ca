import threading
from collections.abc import Callable, Sequence

import pytest

from appliance.serving.batcher import Batcher, BatcherClosed


class GatedModel:
    """Doubles numbers; the first call waits for `gate`, so requests pile up meanwhile."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.started = threading.Event()
        self.batches: list[list[int]] = []

    def __call__(self, items: Sequence[int]) -> list[int]:
        self.started.set()
        self.gate.wait(10)
        self.batches.append(list(items))
        return [i * 2 for i in items]


def serving(
    model: Callable[[Sequence[int]], list[int]], max_batch_size: int, max_batch_wait_ms: float
) -> Batcher[int, int]:
    """A batcher answered by `model` on a thread of its own (a model instance's job)."""
    batcher: Batcher[int, int] = Batcher(max_batch_size, max_batch_wait_ms)
    threading.Thread(target=batcher.serve, args=(model,), daemon=True).start()
    return batcher


def test_requests_that_queue_during_a_forward_pass_form_the_next_batch() -> None:
    model = GatedModel()
    batcher = serving(model, max_batch_size=4, max_batch_wait_ms=50)
    first = batcher.submit(0)
    assert model.started.wait(5)
    rest = [batcher.submit(i) for i in range(1, 10)]
    model.gate.set()
    assert [f.result(5)[0] for f in [first, *rest]] == [i * 2 for i in range(10)]
    assert model.batches[0] == [0]
    assert [len(b) for b in model.batches[1:]] == [4, 4, 1]
    assert rest[0].result()[1].batch_size == 4
    batcher.close()


def test_a_lone_request_does_not_wait_for_company() -> None:
    model = GatedModel()
    model.gate.set()
    batcher = serving(model, max_batch_size=8, max_batch_wait_ms=1000)
    output, timing = batcher.submit(21).result(5)
    assert output == 42 and timing.batch_size == 1
    assert timing.queue_ms < 500  # it did not sit out the 1000 ms wait
    batcher.close()


def test_close_answers_what_is_queued_then_refuses() -> None:
    model = GatedModel()
    batcher = serving(model, max_batch_size=2, max_batch_wait_ms=0)
    futures = [batcher.submit(i) for i in range(5)]
    model.gate.set()
    batcher.close()
    assert [f.result(5)[0] for f in futures] == [0, 2, 4, 6, 8]
    with pytest.raises(BatcherClosed):
        batcher.submit(1)


def test_a_model_error_reaches_every_request_of_its_batch() -> None:
    def broken(items: Sequence[int]) -> list[int]:
        raise ValueError("bad weights")

    batcher = serving(broken, max_batch_size=4, max_batch_wait_ms=0)
    with pytest.raises(ValueError, match="bad weights"):
        batcher.submit(1).result(5)
    batcher.close()


def test_serve_returns_once_closed_and_drained() -> None:
    model = GatedModel()
    model.gate.set()
    batcher: Batcher[int, int] = Batcher(max_batch_size=4, max_batch_wait_ms=0)
    futures = [batcher.submit(i) for i in range(6)]
    batcher.close()
    batcher.serve(model)  # on this thread: answers the six, then returns
    assert [f.result(0)[0] for f in futures] == [0, 2, 4, 6, 8, 10]
