"""The executor contract: what the run's child process hands an executor to train, and what it
gets back. Whatever the executor, the child process stays the run's owner: it prepares the run
(the dataset version laid out, the split, the base model), records status, progress and metrics,
and afterwards calibrates, registers and profiles the trained folder. An executor only decides
where `train` and `evaluate` run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from appliance.recipes.context import Reporter
from appliance.recipes.spec import RecipeSpec


class Cancelled(BaseException):
    """The run was cancelled: raised in the child's main thread by SIGTERM (or by an executor
    once it has stopped its remote work). A BaseException so recipe code rarely swallows it.
    Defined here, not in child.py, which runs as __main__ and would be a second class."""


@dataclass
class TrainJob:
    run_id: str
    spec: RecipeSpec
    dataset_dir: Path
    train_rows: list[dict[str, Any]]
    eval_rows: list[dict[str, Any]]
    params: dict[str, Any]
    seed: int
    output_dir: Path
    """Where the trained Hugging Face folder must be once `train` returns, on this machine."""
    base_model: Path | None
    note: Callable[..., None]
    """Records what the executor says of the run (`note(job_id=…)`) in its executor_ref."""


@dataclass
class Trained:
    metrics: dict[str, float]
    """The recipe's held-out metrics (its `evaluate`)."""
    train_seconds: float


class Executor(Protocol):
    name: str

    def train(self, job: TrainJob, report: Reporter) -> Trained:
        """Train into job.output_dir and evaluate on the held-out rows. Raises what the recipe
        raised (the run fails with it), or the child's Cancelled once it has stopped the work."""
        ...
