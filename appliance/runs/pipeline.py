"""One run of a recipe, start to finish: lay out the dataset version, split it, train, evaluate on
the held-out rows, and register the model version with its metrics and lineage."""

from __future__ import annotations

import json
import shutil
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from appliance.models.folder import architecture, weights_summary
from appliance.recipes.spec import RecipeSpec
from appliance.recipes.split import split_rows
from appliance.runs.executors import TrainJob, for_run
from appliance.runs.tracking import Runs
from appliance.services import Services
from appliance.tasks import DEFAULT_TASK
from appliance.trust import store as trust_store
from appliance.trust.calibrate import version_metrics
from appliance.trust.fit import Fitted

LIBRARIES = ("appliance", "torch", "transformers", "tokenizers", "numpy", "pillow")


def library_versions() -> dict[str, str]:
    import platform

    found = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found


class RegistryReporter:
    """A Reporter that records progress and metrics on the run, and logs to stdout (the log)."""

    def __init__(self, runs: Runs, run_id: str):
        self._runs = runs
        self._run_id = run_id

    def progress(self, step: int, total: int, **metrics: float) -> None:
        if metrics:
            self._runs.log_metrics(self._run_id, [(k, v, step) for k, v in metrics.items()])
        progress = {"step": step, "total": total, "at": time.time()}
        self._runs.update(self._run_id, progress=json.dumps(progress))
        shown = " ".join(f"{k}={v:.4g}" for k, v in metrics.items())
        self.log(f"step {step}/{total} {shown}")

    def metric(self, name: str, value: float, step: int = 0) -> None:
        self._runs.log_metric(self._run_id, name, value, step)

    def log(self, message: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)


def execute(services: Services, run: dict[str, Any]) -> dict[str, Any]:
    """Train, evaluate and register; returns the registered model version."""
    workspace = services.workspaces.by_id(run["workspace_id"])["name"]
    spec = services.recipes.get(workspace, run["recipe"])
    reporter = RegistryReporter(services.runs, run["id"])
    if spec.code_hash() != run["code_hash"]:
        reporter.log("warning: the recipe's code changed since this run was queued")
    dataset = services.datasets.by_digest(run["dataset_id"], run["dataset_digest"])
    dataset_dir = services.datasets.materialize(dataset)
    train_rows, eval_rows = split_rows(services.datasets.rows(dataset))
    reporter.log(
        f"recipe {spec.name}, dataset {dataset['name']}@{dataset['version']}: "
        f"{len(train_rows)} training rows, {len(eval_rows)} held out"
    )
    params = dict(run["params"])
    base_model = _base_model(services, run, params)
    scratch = services.settings.home / "tmp" / "runs" / run["id"]
    shutil.rmtree(scratch, ignore_errors=True)
    output_dir = scratch / "model"
    output_dir.mkdir(parents=True)
    executor = for_run(run)
    job = TrainJob(
        run_id=run["id"],
        spec=spec,
        dataset_dir=dataset_dir,
        train_rows=train_rows,
        eval_rows=eval_rows,
        params=params,
        seed=int(run["seed"] or 0),
        output_dir=output_dir,
        base_model=base_model,
        note=lambda **fields: services.runs.note_executor(run["id"], **fields),
    )
    try:
        trained = executor.train(job, reporter)
        metrics = dict(trained.metrics)
        metrics["train_seconds"] = trained.train_seconds
        task = spec.task or DEFAULT_TASK
        fitted = _calibrate(services, spec, task, output_dir, dataset_dir, train_rows, eval_rows,
                            int(run["seed"] or 0), reporter)  # fmt: skip
        if fitted is not None:
            metrics |= version_metrics(fitted)
        final_step = services.runs.last_step(run["id"])
        services.runs.log_metrics(run["id"], [(k, v, final_step) for k, v in metrics.items()])
        shown = ", ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items()))
        reporter.log(f"held-out metrics: {shown}")
        version_row = services.models.register(
            workspace,
            run["model_name"] or spec.name,
            output_dir,
            metrics=metrics,
            run_id=run["id"],
            dataset_id=run["dataset_id"],
            dataset_digest=run["dataset_digest"],
            parent_version_id=run["parent_model_version_id"],
            recipe=spec.name,
            task=task,
            info={
                **architecture(output_dir),
                **weights_summary(output_dir),
                **_trained_on(services, run),
            },
        )
        reporter.log(f"registered {version_row['name']}@{version_row['version']}")
        if fitted is not None:
            trust_store.save(services.registry, version_row["id"], fitted)
        _profile(services, version_row, reporter)
        return version_row
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _trained_on(services: Services, run: dict[str, Any]) -> dict[str, Any]:
    """Where a run that left this machine trained (the Ray job id and worker), in its lineage."""
    if run.get("executor", "local") == "local":
        return {}
    return {"executor": {"name": run["executor"], **services.runs.get(run["id"])["executor_ref"]}}


def _calibrate(
    services: Services,
    spec: RecipeSpec,
    task: str,
    output_dir: Path,
    dataset_dir: Path,
    train_rows: list[dict[str, Any]],
    eval_rows: list[dict[str, Any]],
    seed: int,
    reporter: RegistryReporter,
) -> Fitted | None:
    """The new model's calibration (appliance/trust/), measured by the runtime that will serve
    it; a failure here costs no version, which then serves its model's own confidence."""
    from appliance.serving.options import DeployOptions
    from appliance.serving.runtime import RecipeRuntime
    from appliance.tasks import get_task
    from appliance.trust.calibrate import calibrate

    started = time.perf_counter()
    runtime = RecipeRuntime(spec, output_dir, DeployOptions("none", "cpu", 32, 0), get_task(task))
    target = services.settings.uncertain_target_recall
    try:
        fitted = calibrate(runtime, dataset_dir, train_rows, eval_rows, target, seed)
    except Exception as exc:
        reporter.log(f"warning: no calibration ({type(exc).__name__}: {exc}); the version "
                     "serves its model's own confidence")  # fmt: skip
        return None
    trust = fitted.trust
    shown = ", ".join(f"{k}={v:.3f}" for k, v in version_metrics(fitted).items())
    threshold = trust["uncertain"]["threshold"]
    reporter.log(
        f"calibrated on {trust['rows']['held_out']} held-out and {trust['rows']['shifted']} "
        f"shifted rows in {time.perf_counter() - started:.1f}s: {trust['signal']} by "
        f"{trust['calibrator']['method']} ({trust['kept']}), uncertain below {threshold:.3f}; "
        f"{shown}"
    )
    return fitted


def _profile(services: Services, version: dict[str, Any], reporter: RegistryReporter) -> None:
    """The reference profile drift compares traffic with; a failure here costs no version."""
    from appliance.monitoring.profiles import ensure_profile

    try:
        profile = ensure_profile(services, version)
    except Exception as exc:
        reporter.log(f"warning: no reference profile for drift ({exc}); it is retried on use")
        return
    if profile is not None:
        reporter.log(f"reference profile for drift: {profile['images']} images")


def _base_model(services: Services, run: dict[str, Any], params: dict[str, Any]) -> Path | None:
    if run["parent_model_version_id"]:
        rows = services.registry.query(
            "SELECT path FROM model_versions WHERE id = ?", (run["parent_model_version_id"],)
        )
        return services.settings.home / rows[0]["path"]
    value = params.get("base_model")
    return Path(value) if value else None
