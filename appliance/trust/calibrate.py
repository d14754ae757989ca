"""Calibrating a version: its runtime answers the held-out rows (as they are and shifted) and the
reference rows (measure.py), and fit.py chooses the calibration. Run where a version is
evaluated: in a training run's own process before the version is registered, or by
`appliance model calibrate` for a version registered without one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from appliance.serving.runtime import ModelRuntime
from appliance.trust.fit import Fitted, fit
from appliance.trust.measure import measure

SHOWN = (
    "ece", "ece_raw", "error_auroc", "ece_shifted", "error_auroc_shifted",
)  # fmt: skip
"""The calibration's figures that become the version's metrics."""


def calibrate(
    runtime: ModelRuntime,
    dataset_dir: Path,
    train_rows: Sequence[Mapping[str, Any]],
    eval_rows: Sequence[Mapping[str, Any]],
    target_recall: float,
    seed: int = 0,
) -> Fitted:
    """Load `runtime` (unloaded: its own confidence, no calibration yet), measure, fit."""
    runtime.load()
    try:
        measured = measure(runtime.predict, runtime.task, dataset_dir, train_rows, eval_rows, seed)
    finally:
        runtime.unload()
    return fit(measured, target_recall, seed)


def version_metrics(fitted: Fitted) -> dict[str, float]:
    """The figures a version's metrics gain: ECE and error AUROC (calibrated and raw, held-out
    and on unseen shifts) and the uncertain warning's recall and precision on the held-out rows."""
    trust = fitted.trust
    metrics = {k: v for k, v in trust["metrics"].items() if k in SHOWN}
    uncertain = trust["uncertain"]
    for key in ("recall", "precision", "warned_share"):
        if uncertain.get(key) is not None:
            metrics[f"uncertain_{key}"] = uncertain[key]
    return metrics
