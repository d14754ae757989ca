"""`appliance demo`: the reference story, unattended and offline, told step by step.

So far: product photos are generated into the workspace `classified-ads` and versioned; the
captioner recipe trains v1 in a child process, evaluates it on held-out photos and registers it;
the gate promotes it to `production`; then a new category (cars) lands as a new dataset version.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.datasets.imagefolder import METADATA
from appliance.errors import ApplianceError
from appliance.models.promotion import promote
from appliance.runs.launcher import start_run, wait_run
from appliance.services import Services

WORKSPACE = "classified-ads"
DATASET = "product-photos"
RECIPE = "captioner"
SUMMARY_METRICS = ("exact_match", "exact_match_normal", "exact_match_low", "bleu", "train_seconds")


@dataclass(frozen=True)
class DemoOptions:
    count: int = 2000
    new_category_count: int = 200
    seed: int = 0
    low_light_fraction: float = 0.1
    train_params: dict[str, str] = field(default_factory=dict)


def run_demo(
    services: Services,
    options: DemoOptions,
    say: Callable[[str], None],
    on_poll: Callable[[dict[str, Any]], None] = lambda run: None,
) -> dict[str, Any]:
    from appliance.datasets.synthetic import generate

    services.workspaces.ensure(WORKSPACE)
    say(f"workspace {WORKSPACE} at {services.settings.home}")
    datasets = services.datasets
    with tempfile.TemporaryDirectory(dir=services.settings.home, prefix=".demo-") as scratch:
        photos = Path(scratch) / "photos"
        summary = generate(
            photos, count=options.count, seed=options.seed,
            low_light_fraction=options.low_light_fraction,
        )  # fmt: skip
        say(
            f"1. generated {summary.count} product photos ({summary.low_light} low-light) "
            f"in {len(summary.categories)} categories"
        )
        first = datasets.add(WORKSPACE, DATASET, photos)
        v1 = first.version
        verb = "added" if first.created else "found existing"
        say(f"2. {verb} dataset {DATASET}@{v1['version']} — id {v1['digest'][:12]}")

        again = datasets.add(WORKSPACE, DATASET, photos)
        same = again.version["digest"] == v1["digest"] and not again.created
        outcome = "the same version, nothing stored twice" if same else "a new version (unexpected)"
        say(f"3. added the same folder again → {outcome}")

        say(f"4. training the {RECIPE} recipe on {DATASET}@{v1['version']} (a child process)")
        dataset_ref = f"{DATASET}@{v1['digest']}"
        launch = start_run(services, WORKSPACE, RECIPE, dataset_ref, options.train_params)
        run = wait_run(services, launch, on_poll)
        if run["status"] != "succeeded":
            raise ApplianceError(
                f"training run {run['id']} {run['status']}: {run['error']} (log: {run['log_path']})"
            )
        model = services.models.by_run(run["id"])
        assert model is not None  # a succeeded run has registered its version
        say(f"5. run {run['id']} registered {model['name']}@{model['version']}: {_scores(model)}")

        try:
            gate = promote(services, WORKSPACE, f"{model['name']}@{model['version']}")
            say(f"6. promoted {model['name']}@{model['version']} to production — {gate.summary()}")
        except ApplianceError as refused:
            say(f"6. the gate kept production where it was: {refused}")

        cars = Path(scratch) / "cars"
        generate(
            cars, count=options.new_category_count, seed=options.seed + 1,
            low_light_fraction=options.low_light_fraction, categories=["car"],
        )  # fmt: skip
        added = _append_imagefolder(photos, cars, prefix="car-")
        v2 = datasets.add(WORKSPACE, DATASET, photos).version
        say(
            f"7. a new category lands: {added} car photos → {DATASET}@{v2['version']} "
            f"— id {v2['digest'][:12]}"
        )
        diff = datasets.diff(WORKSPACE, f"{DATASET}@{v1['digest']}", f"{DATASET}@{v2['digest']}")
        say(
            f"8. diff @{v1['version']} → @{v2['version']}: {len(diff['added'])} added, "
            f"{len(diff['removed'])} removed, {len(diff['changed'])} changed "
            f"(metadata.jsonl updated)"
        )
    versions = services.models.versions(WORKSPACE, model["name"])
    return {"workspace": WORKSPACE, "datasets": [v1, v2], "diff": diff, "models": versions}


def summary_rows(versions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per model version for the closing table."""
    return [
        {
            "version": v["version"],
            "aliases": v["aliases"],
            **{k: v["metrics"].get(k) for k in SUMMARY_METRICS},
        }
        for v in versions
    ]


def _scores(version: dict[str, Any]) -> str:
    metrics = version["metrics"]
    return ", ".join(f"{k} {metrics[k]:.3g}" for k in SUMMARY_METRICS if k in metrics)


def _append_imagefolder(target: Path, extra: Path, prefix: str) -> int:
    """Copy `extra`'s images into `target` under new names and append their metadata rows."""
    rows = [json.loads(line) for line in (extra / METADATA).read_text().splitlines() if line]
    with (target / METADATA).open("a") as metadata:
        for row in rows:
            name = f"{prefix}{row['file_name']}"
            shutil.copyfile(extra / row["file_name"], target / name)
            metadata.write(json.dumps({**row, "file_name": name}) + "\n")
    return len(rows)
