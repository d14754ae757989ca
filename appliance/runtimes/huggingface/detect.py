"""What a Hugging Face folder is, read from its files alone (no torch, no weights loaded): the
task its architecture serves, the Auto class that loads it, and the processor files it brings.

Detection follows `config.json` as transformers does: `architectures` first, then `model_type`.
A folder that fits no supported architecture, or lacks the files its task needs, is refused with
what was found and what would fit."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.errors import InvalidInput

IMAGE_TO_TEXT = "image-to-text"
IMAGE_TEXT_TO_TEXT = "image-text-to-text"
TEXT_CLASSIFICATION = "text-classification"
IMAGE_CLASSIFICATION = "image-classification"

GENERATIVE = "AutoModelForImageTextToText"
"""transformers' one Auto class for every model that writes text about an image (v5 folded
AutoModelForVision2Seq into it)."""

ARCHITECTURES: dict[str, tuple[str, ...]] = {
    # architecture class → the tasks it can serve, the default first
    "VisionEncoderDecoderModel": (IMAGE_TO_TEXT,),
    "BlipForConditionalGeneration": (IMAGE_TO_TEXT,),
    "GitForCausalLM": (IMAGE_TO_TEXT,),
    "Pix2StructForConditionalGeneration": (IMAGE_TO_TEXT,),
    "LlavaForConditionalGeneration": (IMAGE_TEXT_TO_TEXT, IMAGE_TO_TEXT),
    "Idefics3ForConditionalGeneration": (IMAGE_TEXT_TO_TEXT, IMAGE_TO_TEXT),
    "SmolVLMForConditionalGeneration": (IMAGE_TEXT_TO_TEXT, IMAGE_TO_TEXT),
}
SUFFIXES = {
    "ForSequenceClassification": TEXT_CLASSIFICATION,
    "ForImageClassification": IMAGE_CLASSIFICATION,
}
AUTO_CLASSES = {
    IMAGE_TO_TEXT: GENERATIVE,
    IMAGE_TEXT_TO_TEXT: GENERATIVE,
    TEXT_CLASSIFICATION: "AutoModelForSequenceClassification",
    IMAGE_CLASSIFICATION: "AutoModelForImageClassification",
}
MODEL_TYPES = {
    # model_type → architecture, for a config.json saved without `architectures`
    "vision-encoder-decoder": "VisionEncoderDecoderModel",
    "blip": "BlipForConditionalGeneration",
    "git": "GitForCausalLM",
    "pix2struct": "Pix2StructForConditionalGeneration",
    "llava": "LlavaForConditionalGeneration",
    "idefics3": "Idefics3ForConditionalGeneration",
    "smolvlm": "SmolVLMForConditionalGeneration",
}

TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "tokenizer.model", "spiece.model")
IMAGE_PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")
NEEDS_TOKENIZER = (IMAGE_TO_TEXT, IMAGE_TEXT_TO_TEXT, TEXT_CLASSIFICATION)
NEEDS_IMAGE_PROCESSOR = (IMAGE_TO_TEXT, IMAGE_TEXT_TO_TEXT, IMAGE_CLASSIFICATION)


@dataclass(frozen=True)
class Detected:
    task: str
    architecture: str
    """The model class of `config.json` (e.g. BlipForConditionalGeneration)."""
    model_type: str
    """`model_type`, with the encoder and decoder for an encoder-decoder (vit+gpt2)."""
    auto_class: str
    labels: tuple[str, ...] = ()
    """A classifier's labels (id2label), in id order."""

    @property
    def tasks(self) -> tuple[str, ...]:
        return tasks_of(self.architecture)


def tasks_of(architecture: str) -> tuple[str, ...]:
    if architecture in ARCHITECTURES:
        return ARCHITECTURES[architecture]
    return tuple(task for suffix, task in SUFFIXES.items() if architecture.endswith(suffix))


def detect(folder: Path, task: str | None = None) -> Detected:
    """The task, class and labels of the Hugging Face folder `folder`; `task` overrides the
    default task where the architecture serves several. Raises InvalidInput naming what was
    found when nothing fits."""
    config = _config(folder)
    found = [str(a) for a in config.get("architectures") or []]
    model_type = str(config.get("model_type") or "")
    candidates = found or ([MODEL_TYPES[model_type]] if model_type in MODEL_TYPES else [])
    architecture = next((a for a in candidates if tasks_of(a)), None)
    if architecture is None:
        seen = f"architectures {found}" if found else "no architectures"
        raise InvalidInput(
            f"{folder}: config.json names {seen} and model_type {model_type or 'none'!r}, "
            f"which the Hugging Face runtime does not serve. Supported: {supported()}. "
            "A model trained by a recipe is served by it: register with --recipe NAME"
        )
    tasks = tasks_of(architecture)
    chosen = task or tasks[0]
    if chosen not in tasks:
        raise InvalidInput(
            f"{folder}: a {architecture} serves {' or '.join(tasks)}, not {chosen!r}; "
            "leave out --task or choose one of those"
        )
    _require_files(folder, chosen)
    return Detected(chosen, architecture, _type_of(config), AUTO_CLASSES[chosen], _labels(config))


def supported() -> str:
    """The supported architectures, for errors and docs."""
    names = [*ARCHITECTURES, *(f"*{suffix}" for suffix in SUFFIXES)]
    return ", ".join(names)


def _config(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise InvalidInput(
            f"{folder} has no config.json: save the model with save_pretrained"
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise InvalidInput(f"{path} does not hold a JSON object")
    return config


def _type_of(config: dict[str, Any]) -> str:
    model_type = str(config.get("model_type") or "")
    parts = [
        str(config[side].get("model_type"))
        for side in ("encoder", "decoder")
        if isinstance(config.get(side), dict) and config[side].get("model_type")
    ]
    return f"{model_type} ({'+'.join(parts)})" if parts else model_type


def _labels(config: dict[str, Any]) -> tuple[str, ...]:
    id2label = config.get("id2label")
    if not isinstance(id2label, dict):
        return ()
    try:
        return tuple(str(id2label[k]) for k in sorted(id2label, key=int))
    except ValueError:
        return tuple(str(v) for v in id2label.values())


def _require_files(folder: Path, task: str) -> None:
    missing = []
    if task in NEEDS_TOKENIZER and not any((folder / f).is_file() for f in TOKENIZER_FILES):
        missing.append(f"a tokenizer ({' or '.join(TOKENIZER_FILES)})")
    if task in NEEDS_IMAGE_PROCESSOR and not any(
        (folder / f).is_file() for f in IMAGE_PROCESSOR_FILES
    ):
        missing.append(f"an image processor ({' or '.join(IMAGE_PROCESSOR_FILES)})")
    if missing:
        raise InvalidInput(
            f"{folder}: a {task} model needs {' and '.join(missing)} beside its weights; save "
            "the processor and tokenizer into the folder too (processor.save_pretrained(folder))"
        )
