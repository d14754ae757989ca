"""Which instances a deployment gets from its options: `instances` copies of its model, each on
a thread of this process or in a spawned worker (`instance_kind`), and each with its own batcher
and its share of the cores for torch's threads. One thread instance is built exactly as before
instance groups: the process's torch thread count, the endpoint's thread name."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from appliance.errors import InvalidInput
from appliance.serving.batcher import Batcher
from appliance.serving.instance import ModelInstance
from appliance.serving.instances.group import Instance, InstanceGroup
from appliance.serving.instances.host import Deployed, InstanceHost
from appliance.serving.options import DeployOptions
from appliance.serving.runtime import ModelRuntime
from appliance.tasks import PredictInput, Prediction

RuntimeFactory = Callable[[dict[str, Any], DeployOptions], ModelRuntime]


def build_group(
    deployed: Deployed,
    options: DeployOptions,
    make_runtime: RuntimeFactory,
    warmup: Callable[[ModelRuntime], None],
    torch_threads: int = 0,
    host: InstanceHost | None = None,
) -> InstanceGroup:
    """The (unstarted) instances that serve `deployed` with `options`."""
    name, count, version = f"infer-{deployed.endpoint}", options.instances, deployed.version
    if options.instance_kind == "thread" and count == 1:
        only = ModelInstance(
            make_runtime(version, options), warmup, _batcher(options), name=name,
            torch_threads=torch_threads,
        )  # fmt: skip
        return InstanceGroup([only])
    share = share_of(torch_threads, count)
    instances: list[Instance] = []
    if options.instance_kind == "thread":
        for n in range(count):
            runtime = make_runtime(version, options)
            batcher = _batcher(options)
            instances.append(
                ModelInstance(runtime, warmup, batcher, f"{name}-{n}", share, share=True)
            )
        return InstanceGroup(instances, "thread")
    if host is None:
        raise InvalidInput("process instances need a server's serving (appliance serve)")
    from appliance.serving.instances.process import ProcessInstance, RemoteRuntime
    from appliance.serving.instances.worker import WorkerSpec

    # Built here, never loaded: the task says what the endpoint takes and answers.
    remote = RemoteRuntime(make_runtime(version, options).task)
    spec = WorkerSpec(host.settings, version, options, warmup, share)
    for n in range(count):
        instances.append(
            ProcessInstance(spec, remote, _batcher(options), f"{name}-{n}", host, deployed, index=n)
        )
    return InstanceGroup(instances, "process")


def share_of(torch_threads: int, count: int) -> int:
    """Each of `count` instances' torch threads: the process's count (torch_threads, or one per
    core) split evenly, at least one each."""
    total = torch_threads if torch_threads > 0 else (os.cpu_count() or 1)
    return max(1, total // count)


def _batcher(options: DeployOptions) -> Batcher[PredictInput, Prediction]:
    return Batcher(options.max_batch_size, options.max_batch_wait_ms)
