"""The Hugging Face runtime: serves a standard model folder by its own files, with no recipe.
The Auto class of its task loads the weights (safetensors, local files only, never remote code),
its processor and tokenizer read the inputs, its generation config drives `generate()`. The
quantization modes are the platform's (`appliance.serving.quantize`), as for recipe models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from appliance.errors import InvalidInput
from appliance.models.loading import quiet_offline_transformers
from appliance.runtimes.huggingface.detect import (
    IMAGE_CLASSIFICATION,
    IMAGE_TEXT_TO_TEXT,
    IMAGE_TO_TEXT,
    TEXT_CLASSIFICATION,
    Detected,
)
from appliance.serving.options import DeployOptions
from appliance.serving.quantize import check_supported, prepare_model
from appliance.serving.runtime import PredictorRuntime
from appliance.tasks import Task


class HuggingFaceRuntime(PredictorRuntime):
    def __init__(self, model_dir: Path, detected: Detected, options: DeployOptions, task: Task):
        super().__init__(model_dir, options, task)
        self.detected = detected

    def load_predictor(self, device: str) -> Any:
        check_supported(device, self.options.quantization)  # before reading the weights
        return load_predictor(self.model_dir, self.detected, device, self.options.quantization)


def load_model(folder: Path, detected: Detected) -> Any:
    """The model of `folder`, by its task's Auto class, in float32 on the CPU."""
    quiet_offline_transformers()
    import transformers

    auto = getattr(transformers, detected.auto_class)
    try:
        return auto.from_pretrained(
            folder, use_safetensors=True, local_files_only=True, trust_remote_code=False
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(
            f"{folder}: transformers could not load this {detected.architecture} "
            f"({type(exc).__name__}: {exc})"
        ) from None


def load_predictor(folder: Path, detected: Detected, device: str, quantization: str) -> Any:
    """What the task's `predict` calls: the model prepared on `device` in `quantization`, with
    the folder's processor and tokenizer."""
    from appliance.runtimes.huggingface.classifiers import ImageLabels, TextLabels
    from appliance.runtimes.huggingface.generation import Captions, PromptedCaptions

    model = prepare_model(load_model(folder, detected), device, quantization)
    task = detected.task
    if task == TEXT_CLASSIFICATION:
        return TextLabels(model, _auto("AutoTokenizer", folder), device)
    if task == IMAGE_CLASSIFICATION:
        return ImageLabels(model, _auto("AutoImageProcessor", folder), device)
    if detected.architecture == "VisionEncoderDecoderModel":
        # No processor class of its own: an image processor for the encoder, a tokenizer for
        # the decoder, as transformers' image-to-text pipeline loads them.
        image_processor = _auto("AutoImageProcessor", folder)
        return Captions(model, image_processor, _auto("AutoTokenizer", folder), device)
    processor = _auto("AutoProcessor", folder)
    if IMAGE_TEXT_TO_TEXT in detected.tasks:  # a VLM: prompted, with keywords only for its task
        return PromptedCaptions(model, processor, device, keywords=task == IMAGE_TEXT_TO_TEXT)
    assert task == IMAGE_TO_TEXT, task
    return Captions(model, processor, processor.tokenizer, device)


def _auto(name: str, folder: Path) -> Any:
    import transformers

    try:
        return getattr(transformers, name).from_pretrained(
            folder, local_files_only=True, trust_remote_code=False
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        what = name.removeprefix("Auto")
        raise InvalidInput(
            f"{folder}: its {what} could not be loaded ({type(exc).__name__}: {exc}); save it "
            "into the folder with save_pretrained"
        ) from None
