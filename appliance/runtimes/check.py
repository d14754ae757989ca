"""`python -m appliance.runtimes.check`: the child process of the register-time check
(appliance.models.intake.check_serves). It reads one JSON request on stdin (folder, runtime,
task, recipe folder), loads the folder as serving would (CPU, no quantization), answers the
task's warm-up input, and prints one JSON line: the answer, the seconds, and the quantization
modes this machine can serve it in; or {"error": reason} for a clear refusal."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from appliance.errors import ApplianceError


def run(request: dict[str, Any]) -> dict[str, Any]:
    from appliance.serving.options import DeployOptions
    from appliance.serving.quantize import MODES, check_supported
    from appliance.tasks import get_task

    folder, task = Path(request["folder"]), get_task(request["task"])
    options = DeployOptions("none", "cpu", 1, 0)
    started = time.perf_counter()
    runtime = _runtime(request, folder, options, task)
    runtime.load()
    (prediction,) = runtime.predict([task.warmup()])
    seconds = time.perf_counter() - started
    modes = {}
    for device in ("cpu", "cuda"):
        supported = []
        for mode in MODES:
            try:
                check_supported(device, mode)
            except ApplianceError:
                continue
            supported.append(mode)
        modes[device] = supported
    return {
        "answer": task.answer(prediction),
        "confidence": round(prediction.confidence, 4),
        "seconds": round(seconds, 2),
        "quantization": {device: m for device, m in modes.items() if m},
    }


def _runtime(request: dict[str, Any], folder: Path, options: Any, task: Any) -> Any:
    if request["runtime"] == "recipe":
        from appliance.recipes.spec import read_recipe
        from appliance.serving.runtime import RecipeRuntime

        return RecipeRuntime(read_recipe(Path(request["recipe"])), folder, options, task)
    from appliance.runtimes.huggingface.detect import detect
    from appliance.runtimes.huggingface.runtime import HuggingFaceRuntime

    return HuggingFaceRuntime(folder, detect(folder, request["task"]), options, task)


def main() -> int:
    try:
        report = run(json.loads(sys.stdin.read()))
    except ApplianceError as exc:
        report = {"error": str(exc)}
    except Exception as exc:  # the reason a folder cannot serve, for the one line at register
        report = {"error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(report, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
