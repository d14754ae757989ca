"""Evaluating a version on held-out dataset rows: by its recipe's `evaluate()` when a recipe
serves it, else by its task (the rows read as live inputs, answered by the runtime that serves
the version, scored by the task), so a folder brought without a recipe is gated like a trained
one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from appliance.models.lineage import recipe_of
from appliance.models.loading import quiet_offline_transformers
from appliance.recipes.catalog import load_module
from appliance.recipes.context import EvalContext, SilentReporter
from appliance.recipes.spec import Gate
from appliance.services import Services
from appliance.serving.options import DeployOptions
from appliance.tasks import DEFAULT_TASK, get_task

BATCH = 16


def gate_of(
    services: Services, workspace: str, version: dict[str, Any], recipe: str | None
) -> Gate:
    """The gate a promotion of `version` applies: its recipe's, else its task's metric."""
    if recipe or version.get("runtime") != "huggingface":
        return recipe_of(services, workspace, version, recipe).gate
    return Gate(get_task(version.get("task") or DEFAULT_TASK).gate_metric, "higher", 0.0)


def evaluate_version(
    services: Services,
    workspace: str,
    version: dict[str, Any],
    dataset_dir: Path,
    rows: list[dict[str, Any]],
    recipe: str | None = None,
) -> dict[str, float]:
    quiet_offline_transformers()
    folder = services.models.folder(version)
    if recipe or version.get("runtime") != "huggingface":
        module = load_module(recipe_of(services, workspace, version, recipe))
        context = EvalContext(folder, dataset_dir, rows, params={}, report=SilentReporter())
        return dict(module.evaluate(context))
    from appliance.runtimes.choose import runtime_for

    runtime = runtime_for(services, version, DeployOptions("none", "cpu", BATCH, 0))
    runtime.load()
    try:
        task, predictions = runtime.task, []
        for start in range(0, len(rows), BATCH):
            chunk = rows[start : start + BATCH]
            predictions += runtime.predict([task.example(dataset_dir, row) for row in chunk])
        return task.score(predictions, rows)
    finally:
        runtime.unload()
