"""Which runtime serves a registered version: the one recorded at register ('huggingface' or
'recipe'); a version from before runtimes were recorded is served by its recipe."""

from __future__ import annotations

import logging
from typing import Any

from appliance.errors import InvalidInput
from appliance.models.lineage import recipe_of
from appliance.services import Services
from appliance.serving.options import DeployOptions
from appliance.serving.runtime import PredictorRuntime, RecipeRuntime
from appliance.tasks import DEFAULT_TASK, get_task
from appliance.trust import store
from appliance.trust.apply import Trust

log = logging.getLogger("appliance.serving")


def runtime_for(
    services: Services, version: dict[str, Any], options: DeployOptions, calibrated: bool = True
) -> PredictorRuntime:
    """The runtime that serves `version`, with its calibration (unless not `calibrated`: the
    model's own confidence, as calibration itself measures it)."""
    runtime = _runtime(services, version, options)
    if calibrated:
        runtime.trust = trust_of(services, version)
    return runtime


def trust_of(services: Services, version: dict[str, Any]) -> Trust | None:
    """The version's calibration; None without one (or, logged, with one that cannot be read:
    the version is then served with its model's own confidence rather than not at all)."""
    try:
        stored = store.load(services.registry, version["id"])
        return Trust(*stored) if stored is not None else None
    except (ValueError, KeyError, TypeError):
        log.exception("the calibration of %s@%s cannot be read; serving its own confidence",
                      version["name"], version["version"])  # fmt: skip
        return None


def _runtime(
    services: Services, version: dict[str, Any], options: DeployOptions
) -> PredictorRuntime:
    folder = services.models.folder(version)
    from appliance.runtimes.backends.support import choose

    backend = choose(version, folder, options)  # refuses what it cannot run, before any load
    if version.get("runtime") == "huggingface":
        from appliance.runtimes.huggingface.detect import detect
        from appliance.runtimes.huggingface.runtime import HuggingFaceRuntime

        name = str(version["task"])
        detected = detect(folder, name)
        if backend != "torch":
            from appliance.runtimes.backends.export import export_dir
            from appliance.runtimes.backends.runtime import BackendRuntime

            exports = export_dir(
                services.settings.home, version["id"], backend, options.quantization
            )
            chosen = options.backend == "auto"
            task = get_task(name)
            return BackendRuntime(folder, detected, options, task, backend, exports, chosen)
        return HuggingFaceRuntime(folder, detected, options, get_task(name))
    if version.get("recipe") is None:
        raise InvalidInput(
            f"{version['name']}@{version['version']} was registered before the appliance "
            "recorded how versions are served: register its folder again (appliance model "
            "register WS NAME FOLDER, with --recipe RECIPE if a recipe trained it)"
        )
    spec = recipe_of(services, version["workspace"], version, None)
    task = get_task(version.get("task") or spec.task or DEFAULT_TASK)
    return RecipeRuntime(spec, folder, options, task)
