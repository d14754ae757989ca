"""The model contract the server relies on (`load`, `predict`, `unload`, `ready`, after MLServer),
and its implementation over a recipe's `load(model_dir, device=..., quantization=...)`. What a
batch holds and answers is the model's task's business (appliance/tasks/)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from appliance.errors import InvalidInput
from appliance.models.loading import quiet_offline_transformers
from appliance.recipes.catalog import load_module
from appliance.recipes.spec import RecipeSpec
from appliance.serving.options import DeployOptions
from appliance.tasks import PredictInput, Prediction, Task
from appliance.trust.apply import Trust


class ModelRuntime(Protocol):
    ready: bool
    device: str
    task: Task
    serving_backend: str
    """What runs the loaded model: torch, onnxruntime or openvino (the deploy's `backend`
    resolved: what `auto` chose, or torch where a chosen backend's export failed)."""

    def load(self) -> None: ...

    def predict(self, inputs: Sequence[PredictInput]) -> list[Prediction]: ...

    def unload(self) -> None: ...


class PredictorRuntime:
    """A runtime whose loaded model is one predictor that the task calls: `load` resolves the
    device and asks `load_predictor` for it; one forward pass at a time per loaded model."""

    def __init__(self, model_dir: Path, options: DeployOptions, task: Task):
        self.task = task
        self.model_dir = model_dir
        self.options = options
        self.ready = False
        self.device = "cpu"
        self.serving_backend = "torch"
        self._predictor: Any = None
        self._lock = threading.Lock()
        self.trust: Trust | None = None
        """The version's calibration (appliance/trust/), applied to every batch; None serves the
        model's own confidence."""

    def load_predictor(self, device: str) -> Any:
        raise NotImplementedError

    def load(self) -> None:
        self.device = resolve_device(self.options.device)
        self._predictor = self.load_predictor(self.device)
        self.ready = True

    def predict(self, inputs: Sequence[PredictInput]) -> list[Prediction]:
        with self._lock:
            predictions = self.task.predict(self._predictor, inputs)
        return self.trust.apply(predictions) if self.trust is not None else predictions

    def unload(self) -> None:
        self.ready = False
        self._predictor = None


class RecipeRuntime(PredictorRuntime):
    """Serves a model version with the `load` of the recipe that trained it."""

    def __init__(self, spec: RecipeSpec, model_dir: Path, options: DeployOptions, task: Task):
        super().__init__(model_dir, options, task)
        self.spec = spec

    def load_predictor(self, device: str) -> Any:
        quiet_offline_transformers()
        module = load_module(self.spec)
        loader = getattr(module, "load", None)
        if not callable(loader):
            raise InvalidInput(
                f"recipe '{self.spec.name}' has no load(model_dir, device, quantization), "
                "so its models cannot be served"
            )
        return loader(self.model_dir, device=device, quantization=self.options.quantization)


def resolve_device(requested: str) -> str:
    """`auto` → cuda when present, else cpu; `cuda` without a GPU is an error, never a fallback."""
    if requested == "cpu":
        return "cpu"
    import torch

    available = torch.cuda.is_available()
    if requested == "cuda" and not available:
        raise InvalidInput("device 'cuda' was asked for, but this machine has no usable CUDA GPU")
    return "cuda" if available else "cpu"
