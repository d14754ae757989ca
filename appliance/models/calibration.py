"""Calibrating a registered version (`appliance model calibrate`): one registered without a
calibration (a Hugging Face folder, a version from before calibration) or one whose calibration
should be measured again on other rows. Its runtime answers the held-out rows of its own dataset
(or of the one given) and of their synthetic shifts; the training rows give the reference
embeddings (appliance/trust/). A new calibration applies from the version's next deploy."""

from __future__ import annotations

from typing import Any

from appliance.models.lineage import dataset_of
from appliance.models.loading import quiet_offline_transformers
from appliance.recipes.split import split_rows
from appliance.services import Services
from appliance.serving.options import DeployOptions
from appliance.trust import store
from appliance.trust.calibrate import calibrate, version_metrics


def calibrate_version(
    services: Services, workspace: str, ref: str, dataset: str | None = None
) -> dict[str, Any]:
    """Measure and store `ref`'s calibration; returns it (the trust JSON)."""
    from appliance.runtimes.choose import runtime_for

    quiet_offline_transformers()
    version = services.models.get(workspace, ref)
    data = dataset_of(services, workspace, version, dataset)
    folder = services.datasets.materialize(data)
    train_rows, eval_rows = split_rows(services.datasets.rows(data))
    runtime = runtime_for(services, version, DeployOptions("none", "cpu", 32, 0), calibrated=False)
    fitted = calibrate(
        runtime, folder, train_rows, eval_rows, services.settings.uncertain_target_recall
    )
    store.save(services.registry, version["id"], fitted)
    services.models.add_metrics(version["id"], version_metrics(fitted))
    return {**fitted.trust, "dataset": f"{data['name']}@{data['version']}"}
