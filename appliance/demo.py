"""`appliance demo`: the reference story, unattended and offline, told step by step.

So far: product photos are generated into the workspace `classified-ads` and versioned; the
captioner recipe trains v1 in a child process, evaluates it on held-out photos and registers it;
the gate promotes it to `production`, which is deployed int8 on CPU and answers sellers' photos
over HTTP; then a new category (cars) lands as a new dataset version.
"""

from __future__ import annotations

import itertools
import json
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.datasets.imagefolder import METADATA
from appliance.errors import ApplianceError
from appliance.models.promotion import promote
from appliance.runs.launcher import start_run, wait_run
from appliance.server.background import serving_in_background
from appliance.services import Services

WORKSPACE = "classified-ads"
DATASET = "product-photos"
RECIPE = "captioner"
ENDPOINT = "captions"
SUMMARY_METRICS = ("exact_match", "exact_match_normal", "exact_match_low", "bleu", "train_seconds")


@dataclass(frozen=True)
class DemoOptions:
    count: int = 2000
    new_category_count: int = 200
    seed: int = 0
    low_light_fraction: float = 0.1
    quantization: str = "int8"
    train_params: dict[str, str] = field(default_factory=dict)


def run_demo(
    services: Services,
    options: DemoOptions,
    say: Callable[[str], None],
    on_poll: Callable[[dict[str, Any]], None] = lambda run: None,
) -> dict[str, Any]:
    from appliance.datasets.synthetic import generate

    step = itertools.count(1)

    def note(text: str) -> None:
        say(f"{next(step)}. {text}")

    services.workspaces.ensure(WORKSPACE)
    say(f"workspace {WORKSPACE} at {services.settings.home}")
    datasets = services.datasets
    with tempfile.TemporaryDirectory(dir=services.settings.home, prefix=".demo-") as scratch:
        photos = Path(scratch) / "photos"
        summary = generate(
            photos, count=options.count, seed=options.seed,
            low_light_fraction=options.low_light_fraction,
        )  # fmt: skip
        note(
            f"generated {summary.count} product photos ({summary.low_light} low-light) "
            f"in {len(summary.categories)} categories"
        )
        first = datasets.add(WORKSPACE, DATASET, photos)
        v1 = first.version
        verb = "added" if first.created else "found existing"
        note(f"{verb} dataset {DATASET}@{v1['version']} — id {v1['digest'][:12]}")

        again = datasets.add(WORKSPACE, DATASET, photos)
        same = again.version["digest"] == v1["digest"] and not again.created
        outcome = "the same version, nothing stored twice" if same else "a new version (unexpected)"
        note(f"added the same folder again → {outcome}")

        note(f"training the {RECIPE} recipe on {DATASET}@{v1['version']} (a child process)")
        dataset_ref = f"{DATASET}@{v1['digest']}"
        launch = start_run(services, WORKSPACE, RECIPE, dataset_ref, options.train_params)
        run = wait_run(services, launch, on_poll)
        if run["status"] != "succeeded":
            raise ApplianceError(
                f"training run {run['id']} {run['status']}: {run['error']} (log: {run['log_path']})"
            )
        model = services.models.by_run(run["id"])
        assert model is not None  # a succeeded run has registered its version
        note(f"run {run['id']} registered {model['name']}@{model['version']}: {_scores(model)}")

        try:
            gate = promote(services, WORKSPACE, f"{model['name']}@{model['version']}")
            note(f"promoted {model['name']}@{model['version']} to production — {gate.summary()}")
        except ApplianceError as refused:
            note(f"the gate kept production where it was: {refused}")

        production = services.models.get(WORKSPACE, f"{model['name']}@production")
        samples = generate(
            Path(scratch) / "requests", count=6, seed=options.seed + 2, low_light_fraction=0.5
        )
        with serving_in_background(services) as base:
            _wait_ready(base)
            deployment = {
                "workspace": WORKSPACE, "endpoint": ENDPOINT,
                "model": f"{model['name']}@production",
                "quantization": options.quantization, "device": "cpu",
            }  # fmt: skip
            _post_json(f"{base}/v1/deployments", deployment)
            note(
                f"deployed {model['name']}@{production['version']} (production) at endpoint "
                f"{ENDPOINT}: {options.quantization} on CPU, through POST /v1/deployments"
            )
            note(f"six sellers' photos through POST /v1/endpoints/{ENDPOINT}/predict:")
            for row in _rows(samples.path):
                answer = _post(
                    f"{base}/v1/endpoints/{ENDPOINT}/predict",
                    (samples.path / row["file_name"]).read_bytes(), "image/png",
                )  # fmt: skip
                mark = "✓" if answer["description"] == row["text"] else "✗"
                warn = f" [{', '.join(answer['warnings'])}]" if answer["warnings"] else ""
                say(
                    f"   {mark} {row['lighting']:<6} {answer['description']!r} "
                    f"conf {answer['confidence']:.2f} {answer['latency_ms']:.1f} ms{warn}"
                )

        cars = Path(scratch) / "cars"
        generate(
            cars, count=options.new_category_count, seed=options.seed + 1,
            low_light_fraction=options.low_light_fraction, categories=["car"],
        )  # fmt: skip
        added = _append_imagefolder(photos, cars, prefix="car-")
        v2 = datasets.add(WORKSPACE, DATASET, photos).version
        note(
            f"a new category lands: {added} car photos → {DATASET}@{v2['version']} "
            f"— id {v2['digest'][:12]}"
        )
        diff = datasets.diff(WORKSPACE, f"{DATASET}@{v1['digest']}", f"{DATASET}@{v2['digest']}")
        note(
            f"diff @{v1['version']} → @{v2['version']}: {len(diff['added'])} added, "
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


def _rows(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / METADATA).read_text().splitlines() if line]


def _wait_ready(base: str, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/v2/health/ready", timeout=5) as response:
                if response.status == 200:
                    return
        except urllib.error.URLError:
            pass
        time.sleep(0.1)
    raise ApplianceError("the demo's server never became ready")


def _post(url: str, body: bytes, content_type: str) -> dict[str, Any]:
    request = urllib.request.Request(
        url, data=body, headers={"content-type": content_type}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            return dict(json.loads(response.read()))
    except urllib.error.HTTPError as exc:
        raise ApplianceError(f"{url} answered {exc.code}: {exc.read().decode()}") from None


def _post_json(url: str, data: dict[str, Any]) -> dict[str, Any]:
    return _post(url, json.dumps(data).encode(), "application/json")


def _scores(version: dict[str, Any]) -> str:
    metrics = version["metrics"]
    return ", ".join(f"{k} {metrics[k]:.3g}" for k in SUMMARY_METRICS if k in metrics)


def _append_imagefolder(target: Path, extra: Path, prefix: str) -> int:
    """Copy `extra`'s images into `target` under new names and append their metadata rows."""
    rows = _rows(extra)
    with (target / METADATA).open("a") as metadata:
        for row in rows:
            name = f"{prefix}{row['file_name']}"
            shutil.copyfile(extra / row["file_name"], target / name)
            metadata.write(json.dumps({**row, "file_name": name}) + "\n")
    return len(rows)
