"""Which backend serves a deployment, and what each one refuses, decided before anything is
loaded or unloaded: a backend that is not installed, a device or quantization it does not run,
or a model it cannot export is an `Unprocessable` naming the backend, the model and what to use
instead. `auto` is the backend measured fastest for the device and mode (docs/benchmarks.md,
"CPU backends"); where none beat torch with the same captions, it is torch."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from appliance.errors import Unprocessable
from appliance.serving.options import DeployOptions

MODULES = {"onnxruntime": "onnxruntime", "openvino": "openvino"}
INSTALL = {
    "onnxruntime": "it is a dependency of the appliance: pip install -c constraints.txt -e .",
    "openvino": "pip install -c constraints.txt 'appliance[openvino]'",
}
MODES = {"onnxruntime": ("none", "int8"), "openvino": ("none", "bf16", "int8")}

MEASURED_BEST: dict[tuple[str, str], str] = {
    # 2026-12-02, 2-core Xeon (AMX): 3.05× / 3.40× torch's img/s at batch 1 on the trained
    # captioner with 100% / 98.5% of its captions identical; 1.06× / 1.18× on ViT-B + GPT-2.
    ("cpu", "none"): "onnxruntime",
    ("cpu", "int8"): "onnxruntime",
}
"""(device, quantization) → the backend `auto` picks where it can serve the model; absent:
torch. OpenVINO was slower than ONNX Runtime in every mode both run (docs/benchmarks.md)."""


def choose(version: dict[str, Any], folder: Path, options: DeployOptions) -> str:
    """The backend that serves `version` with `options`: the one asked for, refused here if it
    cannot; for `auto`, the measured best for the device and mode where it can serve this
    model, else torch."""
    if options.backend == "torch" or (options.backend == "auto" and not MEASURED_BEST):
        return "torch"
    from appliance.serving.runtime import resolve_device

    device = resolve_device(options.device)
    backend = resolve(options.backend, device, options.quantization)
    try:
        check(backend, version, folder, device, options.quantization)
    except Unprocessable:
        if options.backend == "auto":
            return "torch"
        raise
    return backend


def resolve(backend: str, device: str, quantization: str) -> str:
    if backend != "auto":
        return backend
    return MEASURED_BEST.get((device, quantization), "torch")


def installed(backend: str) -> bool:
    return importlib.util.find_spec(MODULES[backend]) is not None


def check(
    backend: str, version: dict[str, Any], folder: Path, device: str, quantization: str
) -> None:
    """Raise `Unprocessable` if `backend` cannot serve this version so (torch always can)."""
    if backend == "torch":
        return
    label = f"{version['name']}@{version['version']}"
    instead = "deploy it with --backend torch"
    if not installed(backend):
        raise Unprocessable(
            f"backend '{backend}' is not installed ({INSTALL[backend]}); or {instead}"
        )
    if device != "cpu":
        raise Unprocessable(f"backend '{backend}' runs on the CPU only; {instead} on {device}")
    if quantization not in MODES[backend]:
        modes = ", ".join(MODES[backend])
        raise Unprocessable(
            f"backend '{backend}' runs quantization {modes}, not '{quantization}'; choose one of "
            f"those, or {instead}"
        )
    if version.get("runtime") != "huggingface":
        raise Unprocessable(
            f"backend '{backend}' serves Hugging Face folders; {label} is served by its recipe "
            f"'{version.get('recipe')}': {instead}, or register its folder without a recipe"
        )
    reason = _unsupported(folder)
    if reason is not None:
        raise Unprocessable(f"backend '{backend}' cannot export {label}: {reason}; {instead}")


def _unsupported(folder: Path) -> str | None:
    from appliance.models.loading import quiet_offline_transformers

    quiet_offline_transformers()
    from transformers import AutoConfig, GenerationConfig

    from appliance.runtimes.backends.graphs import unsupported_reason
    from appliance.runtimes.backends.greedy import unsupported_generation

    config = AutoConfig.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
    reason = unsupported_reason(config)
    if reason is None and (folder / "generation_config.json").is_file():
        reason = unsupported_generation(GenerationConfig.from_pretrained(folder))
    return reason
