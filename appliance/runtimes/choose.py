"""Which runtime serves a registered version: the one recorded at register ('huggingface' or
'recipe'); a version from before runtimes were recorded is served by its recipe."""

from __future__ import annotations

from typing import Any

from appliance.errors import InvalidInput
from appliance.models.lineage import recipe_of
from appliance.services import Services
from appliance.serving.options import DeployOptions
from appliance.serving.runtime import ModelRuntime, RecipeRuntime
from appliance.tasks import DEFAULT_TASK, get_task


def runtime_for(
    services: Services, version: dict[str, Any], options: DeployOptions
) -> ModelRuntime:
    folder = services.models.folder(version)
    if version.get("runtime") == "huggingface":
        from appliance.runtimes.huggingface.detect import detect
        from appliance.runtimes.huggingface.runtime import HuggingFaceRuntime

        name = str(version["task"])
        return HuggingFaceRuntime(folder, detect(folder, name), options, get_task(name))
    if version.get("recipe") is None:
        raise InvalidInput(
            f"{version['name']}@{version['version']} was registered before the appliance "
            "recorded how versions are served: register its folder again (appliance model "
            "register WS NAME FOLDER, with --recipe RECIPE if a recipe trained it)"
        )
    spec = recipe_of(services, version["workspace"], version, None)
    task = get_task(version.get("task") or spec.task or DEFAULT_TASK)
    return RecipeRuntime(spec, folder, options, task)
