"""The live models: per endpoint, a group of instances (by default one: a runtime on its own
thread, see instance.py; instances/ for more, on threads or in worker processes), each with its
batcher. A deploy loads and warms the new group beside the old one, swaps the reference in one
assignment, then drains and unloads every instance of the old one, so requests in flight finish
on the model they started on and none fail."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from appliance.errors import ApplianceError, NotFound
from appliance.serving.batcher import BatcherClosed, BatchTiming
from appliance.serving.instances.build import build_group
from appliance.serving.instances.group import Instance, InstanceGroup
from appliance.serving.instances.host import Deployed, InstanceHost
from appliance.serving.options import DeployOptions
from appliance.serving.runtime import ModelRuntime
from appliance.tasks import PredictInput, Prediction

Key = tuple[str, str]  # (workspace, endpoint)
RuntimeFactory = Callable[[dict[str, Any], DeployOptions], ModelRuntime]


class ModelLoading(ApplianceError):
    """The endpoint's first model is still loading: try again shortly."""

    http_status = 503


@dataclass
class LiveModel:
    workspace: str
    endpoint: str
    version: dict[str, Any]
    options: DeployOptions
    group: InstanceGroup
    loaded_at: float = field(default_factory=time.time)

    @property
    def instance(self) -> Instance:
        """The first instance (the only one unless the options asked for more)."""
        return self.group.instances[0]

    @property
    def runtime(self) -> ModelRuntime:
        return self.group.runtime

    @property
    def batcher(self) -> InstanceGroup:
        """Where requests queue: `submit` and `depth`, over every instance's batcher."""
        return self.group


class ModelPool:
    def __init__(
        self,
        make_runtime: RuntimeFactory,
        warmup: Callable[[ModelRuntime], None],
        torch_threads: int = 0,
        host: InstanceHost | None = None,
    ):
        self._make_runtime = make_runtime
        self._warmup = warmup
        self._torch_threads = torch_threads
        self._host = host
        """What process instances need of the service (instances/host.py); None: threads only."""
        self._live: dict[Key, LiveModel] = {}
        self._loading: set[Key] = set()
        self._deploy_locks: dict[Key, threading.Lock] = {}
        self._guard = threading.Lock()
        self.on_cold: Callable[[Key], bool] | None = None
        """Asked when an endpoint is not live: True when it is deployed but cold (residency.py),
        its load then started."""

    def get(self, workspace: str, endpoint: str) -> LiveModel:
        live = self._live.get((workspace, endpoint))
        if live is not None:
            return live
        if (workspace, endpoint) in self._loading:
            raise ModelLoading(f"endpoint '{endpoint}' is loading its model; retry shortly")
        if self.on_cold is not None and self.on_cold((workspace, endpoint)):
            raise ModelLoading(f"endpoint '{endpoint}' was idle and is loading; retry shortly")
        raise NotFound(f"no endpoint '{endpoint}' is deployed in workspace '{workspace}'")

    def submit(
        self, workspace: str, endpoint: str, item: PredictInput
    ) -> tuple[LiveModel, Future[tuple[Prediction, BatchTiming]]]:
        """Queue `item` on the endpoint's current model. A swap can retire the model between
        looking it up and queueing on it; then the lookup is simply done again."""
        for _ in range(3):
            live = self.get(workspace, endpoint)
            try:
                return live, live.batcher.submit(item)
            except BatcherClosed:
                continue
        raise ModelLoading(f"endpoint '{endpoint}' is switching models; retry shortly")

    def live(self) -> list[LiveModel]:
        return list(self._live.values())

    def deploy(
        self, workspace: str, endpoint: str, version: dict[str, Any], options: DeployOptions
    ) -> LiveModel:
        """Blocking: load + warm the new model on its own thread, swap it in, retire the old
        one. Every path that loads a model (start, hot swap, rollback, the scheduler) comes
        here, so none of them leaves torch work on the caller's thread."""
        key = (workspace, endpoint)
        with self._guard:
            lock = self._deploy_locks.setdefault(key, threading.Lock())
        with lock:  # one deploy per endpoint at a time; other endpoints go on
            self._loading.add(key)
            try:
                group = build_group(
                    Deployed(workspace, endpoint, version), options, self._make_runtime,
                    self._warmup, self._torch_threads, self._host,
                )  # fmt: skip
                group.start()
            except BaseException:
                self._loading.discard(key)
                raise
            new = LiveModel(workspace, endpoint, version, options, group)
            old = self._live.get(key)
            self._live[key] = new  # the switch: one reference assignment
            self._loading.discard(key)
        if old is not None:
            _retire(old)
        _freeze_long_lived()
        return new

    def undeploy(self, workspace: str, endpoint: str) -> None:
        old = self._live.pop((workspace, endpoint), None)
        if old is not None:
            _retire(old)

    def close(self) -> None:
        for key in list(self._live):
            self.undeploy(*key)


def _freeze_long_lived() -> None:
    """Move what exists now (a model is tens of thousands of objects) out of the collector's
    sight: otherwise every full collection walks them all again, on whichever thread of the
    request path happened to allocate last. A retired model's objects stay frozen until the
    next deploy unfreezes them for one collection."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def _retire(old: LiveModel) -> None:
    old.group.close()  # every instance answers what it already queued, then unloads its model
