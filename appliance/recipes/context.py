"""What a recipe's `train(ctx)` and `evaluate(ctx)` receive; the pipeline fills these in. A recipe
may use the rest of appliance too (the captioner uses the generator's `darken` and
`appliance.serving.quantize`), but this is the contract it is called through."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


class Reporter(Protocol):
    """Where a recipe reports what it is doing; the pipeline records it in the registry."""

    def progress(self, step: int, total: int, **metrics: float) -> None:
        """Training reached `step` of `total`; `metrics` (e.g. loss=0.31) are logged at `step`."""

    def metric(self, name: str, value: float, step: int = 0) -> None:
        """Log one metric value."""

    def log(self, message: str) -> None:
        """A line for the run's log."""


class PrintReporter:
    """A Reporter for running a recipe by hand (a notebook, a script): prints what it gets."""

    def progress(self, step: int, total: int, **metrics: float) -> None:
        shown = " ".join(f"{k}={v:.4g}" for k, v in metrics.items())
        print(f"step {step}/{total} {shown}", flush=True)

    def metric(self, name: str, value: float, step: int = 0) -> None:
        print(f"{name}={value:.4g} (step {step})", flush=True)

    def log(self, message: str) -> None:
        print(message, flush=True)


class SilentReporter:
    """A Reporter for in-process evaluations whose figures the caller reports itself."""

    def progress(self, step: int, total: int, **metrics: float) -> None:
        pass

    def metric(self, name: str, value: float, step: int = 0) -> None:
        pass

    def log(self, message: str) -> None:
        pass


@dataclass
class TrainContext:
    dataset_dir: Path
    """The dataset version laid out as an imagefolder (images + metadata.jsonl); read-only."""
    train_rows: list[dict[str, Any]]
    """metadata.jsonl rows to train on (the held-out rows are not among them)."""
    eval_rows: list[dict[str, Any]]
    """Held-out rows; a recipe may use them to pick a checkpoint, never to fit weights."""
    params: dict[str, Any]
    """Params from recipe.toml's defaults, overridden by the caller, already typed."""
    output_dir: Path
    """Where `train` saves the model: a Hugging Face folder (save_pretrained, safetensors)."""
    seed: int
    report: Reporter = field(default_factory=PrintReporter)
    base_model: Path | None = None
    """A local Hugging Face folder to fine-tune from, when the caller gave one."""


@dataclass
class EvalContext:
    model_dir: Path
    """A Hugging Face folder written by this recipe's `train`."""
    dataset_dir: Path
    rows: list[dict[str, Any]]
    """The held-out rows to score."""
    params: dict[str, Any]
    report: Reporter = field(default_factory=PrintReporter)
