"""The model contract the server relies on (`load`, `predict`, `unload`, `ready`, after MLServer),
and its implementation over a recipe's `load(model_dir, device=..., quantization=...)`."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from appliance.errors import InvalidInput
from appliance.models.loading import quiet_offline_transformers
from appliance.recipes.catalog import load_module
from appliance.recipes.spec import RecipeSpec
from appliance.serving.options import DeployOptions


@dataclass(frozen=True)
class PredictInput:
    image: Any  # a decoded RGB PIL image
    keywords: str | None = None
    features: dict[str, float] = field(default_factory=dict)
    """Cheap input features (size, brightness, contrast), computed where the image is decoded."""


@dataclass(frozen=True)
class Prediction:
    text: str
    confidence: float


class ModelRuntime(Protocol):
    ready: bool
    device: str

    def load(self) -> None: ...

    def predict(self, inputs: Sequence[PredictInput]) -> list[Prediction]: ...

    def unload(self) -> None: ...


class RecipeRuntime:
    """Serves a model version with the `load` of the recipe that trained it."""

    def __init__(self, spec: RecipeSpec, model_dir: Path, options: DeployOptions):
        self.spec = spec
        self.model_dir = model_dir
        self.options = options
        self.ready = False
        self.device = "cpu"
        self._predictor: Any = None
        self._lock = threading.Lock()  # one forward pass at a time per loaded model

    def load(self) -> None:
        quiet_offline_transformers()
        module = load_module(self.spec)
        loader = getattr(module, "load", None)
        if not callable(loader):
            raise InvalidInput(
                f"recipe '{self.spec.name}' has no load(model_dir, device, quantization), "
                "so its models cannot be served"
            )
        self.device = resolve_device(self.options.device)
        self._predictor = loader(
            self.model_dir, device=self.device, quantization=self.options.quantization
        )
        self.ready = True

    def predict(self, inputs: Sequence[PredictInput]) -> list[Prediction]:
        images = [i.image for i in inputs]
        keywords = [i.keywords for i in inputs]
        with self._lock:
            answers = self._predictor.predict(images, keywords)
        return [Prediction(text, float(confidence)) for text, confidence in answers]

    def unload(self) -> None:
        self.ready = False
        self._predictor = None


def resolve_device(requested: str) -> str:
    """`auto` → cuda when present, else cpu; `cuda` without a GPU is an error, never a fallback."""
    if requested == "cpu":
        return "cpu"
    import torch

    available = torch.cuda.is_available()
    if requested == "cuda" and not available:
        raise InvalidInput("device 'cuda' was asked for, but this machine has no usable CUDA GPU")
    return "cuda" if available else "cpu"
