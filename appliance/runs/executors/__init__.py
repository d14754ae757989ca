"""Where a run trains. `local` (the default) trains in the run's child process; `ray` sends the
training to a Ray cluster. base.py holds the contract, one module per executor."""

from __future__ import annotations

from typing import Any

from appliance.errors import InvalidInput
from appliance.runs.executors.base import Executor, Trained, TrainJob

EXECUTORS = ("local", "ray")

__all__ = ["EXECUTORS", "Executor", "TrainJob", "Trained", "for_run", "prepare"]


def prepare(name: str, ray_address: str | None = None) -> dict[str, Any]:
    """Check, before the run is recorded, that its executor can be used; one clear error
    otherwise. Returns what the run keeps as its executor_ref."""
    if name == "local":
        if ray_address:
            raise InvalidInput("a Ray address goes with the ray executor (--executor ray)")
        return {}
    if name == "ray":
        from appliance.runs.executors import ray_cluster

        ray_cluster.require_ray()
        address = ray_cluster.resolve_address(ray_address)
        ray_cluster.check_reachable(address)
        return {"address": address}
    raise InvalidInput(f"unknown executor '{name}'; one of {', '.join(EXECUTORS)}")


def for_run(run: dict[str, Any]) -> Executor:
    """The executor a recorded run trains on (in its child process)."""
    if run.get("executor") == "ray":
        from appliance.runs.executors.ray_cluster import RayExecutor

        return RayExecutor(run["executor_ref"]["address"])
    from appliance.runs.executors.local import LocalExecutor

    return LocalExecutor()
