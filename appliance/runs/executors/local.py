"""The local executor: the recipe trains in the run's own child process, as it always has."""

from __future__ import annotations

import time

from appliance.recipes.catalog import load_module
from appliance.recipes.context import EvalContext, Reporter, TrainContext
from appliance.runs.executors.base import Trained, TrainJob


class LocalExecutor:
    name = "local"

    def train(self, job: TrainJob, report: Reporter) -> Trained:
        return train_here(job, report)


def train_here(job: TrainJob, report: Reporter) -> Trained:
    """Import the recipe and call its train and evaluate in this process (a Ray worker calls
    this too, on its copy of the files)."""
    module = load_module(job.spec)
    started = time.perf_counter()
    module.train(
        TrainContext(
            dataset_dir=job.dataset_dir,
            train_rows=job.train_rows,
            eval_rows=job.eval_rows,
            params=job.params,
            output_dir=job.output_dir,
            seed=job.seed,
            report=report,
            base_model=job.base_model,
        )
    )
    train_seconds = time.perf_counter() - started
    report.log(f"trained in {train_seconds:.1f} s; evaluating on {len(job.eval_rows)} rows")
    context = EvalContext(job.output_dir, job.dataset_dir, job.eval_rows, job.params, report=report)
    return Trained(dict(module.evaluate(context)), round(train_seconds, 3))
