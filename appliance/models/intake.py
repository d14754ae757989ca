"""Registering a folder someone brings: which runtime serves it and for which task, what it is
(architecture, parameters, weight size, labels), and a load-and-predict check before it becomes
a version, so a folder that cannot serve is refused at register with the reason and a deploy
never meets it first.

A folder registered with a recipe is served by that recipe's `load()` and does its task; any
other is served by the Hugging Face runtime, which reads the task from `config.json` (`--task`
chooses where the architecture serves more than one). The check loads the folder and answers
the task's warm-up input in a child process with a timeout: a folder that crashes, hangs or
eats the memory takes the child down, not the caller (or the server it may run in)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from appliance.errors import InvalidInput
from appliance.models.folder import architecture, validate_model_folder, weights_summary
from appliance.names import validate_name
from appliance.recipes.spec import RecipeSpec
from appliance.runtimes.huggingface.detect import detect
from appliance.services import Services
from appliance.tasks import DEFAULT_TASK, task_names

HUGGINGFACE = "huggingface"
RECIPE = "recipe"


@dataclass(frozen=True)
class Intake:
    runtime: str
    task: str
    info: dict[str, Any] = field(default_factory=dict)


def inspect_folder(folder: Path, recipe: RecipeSpec | None, task: str | None) -> Intake:
    """The runtime, task and info of `folder` (its files only: nothing is loaded)."""
    validate_model_folder(folder)
    if task is not None and task not in task_names():
        raise InvalidInput(f"unknown task {task!r}: choose one of {', '.join(task_names())}")
    summary = weights_summary(folder)
    if recipe is not None:
        recipe_task = recipe.task or DEFAULT_TASK
        if task is not None and task != recipe_task:
            raise InvalidInput(
                f"recipe '{recipe.name}' serves {recipe_task}, not {task}: leave out --task, or "
                "leave out --recipe to serve the folder with the Hugging Face runtime"
            )
        return Intake(RECIPE, recipe_task, {**architecture(folder), **summary})
    detected = detect(folder, task)
    info = {
        "architecture": detected.architecture,
        "model_type": detected.model_type,
        **summary,
        **({"labels": list(detected.labels)} if detected.labels else {}),
    }
    return Intake(HUGGINGFACE, detected.task, info)


def check_serves(
    folder: Path, intake: Intake, recipe: RecipeSpec | None, timeout_s: float
) -> dict[str, Any]:
    """Load `folder` as it would be served and answer one warm-up input, in a child process;
    its report (the answer, the seconds it took, the quantization modes this machine can
    serve it in). Raises InvalidInput with the child's reason when it cannot serve."""
    request = {
        "folder": str(folder),
        **asdict(intake),
        "recipe": str(recipe.folder) if recipe is not None else None,
    }
    command = [sys.executable, "-m", "appliance.runtimes.check"]
    try:
        done = subprocess.run(
            command, input=json.dumps(request), capture_output=True, text=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        raise InvalidInput(
            f"{folder} did not load and answer one {intake.task} input within {timeout_s:g} s "
            "(register_check_timeout_s); it is too large for this machine, or hangs"
        ) from None
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        reason = _last_line(done.stderr) or f"the check exited with status {done.returncode}"
        raise InvalidInput(f"{folder} cannot be served: {reason}")
    try:
        report: dict[str, Any] = json.loads(lines[-1])
    except ValueError:  # something in the folder's code path printed over the report
        reason = _last_line(done.stderr) or lines[-1][:200]
        raise InvalidInput(f"{folder} cannot be served: {reason}") from None
    if not isinstance(report, dict):
        raise InvalidInput(f"{folder} cannot be served: the check answered {lines[-1][:200]}")
    if "error" in report:
        raise InvalidInput(f"{folder} cannot be served: {report['error']}")
    return report


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def register_folder(
    services: Services,
    workspace: str,
    name: str,
    folder: Path,
    *,
    recipe: str | None = None,
    task: str | None = None,
    check: bool = True,
    **record: Any,
) -> dict[str, Any]:
    """Register `folder` as the next version of `name` once it is known to serve: its runtime
    and task worked out (`inspect_folder`), then, with `check`, the load-and-predict check.
    `record` goes to Models.register (metrics, lineage, description)."""
    # What can fail fast does, before the check's child process.
    validate_name(name, "model name", services.settings.name_max_length)
    services.workspaces.get(workspace)
    spec = services.recipes.get(workspace, recipe) if recipe else None
    intake = inspect_folder(folder, spec, task)
    info = dict(intake.info)
    if check:
        info["check"] = check_serves(
            folder, intake, spec, services.settings.register_check_timeout_s
        )
    return services.models.register(
        workspace, name, folder, recipe=recipe, runtime=intake.runtime, task=intake.task,
        info=info, **record,
    )  # fmt: skip
