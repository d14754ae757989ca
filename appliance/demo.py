"""`appliance demo`: the reference story, unattended and offline, told step by step.

So far: product photos are generated into the workspace `classified-ads` and versioned; the
captioner recipe trains v1 in a child process, evaluates it on held-out photos and registers it;
the gate promotes it to `production`, which is deployed int8 on CPU and answers sellers' photos
over HTTP. Sellers' traffic follows — ordinary photos, then a run of low-light ones — and they
rate the descriptions; monitoring shows the low_light warnings, brightness drift against the
training data as a firing alert, the ratings and the DORA figures. Then a new category (cars)
lands as a new dataset version.
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
    traffic_normal: int = 60
    traffic_low_light: int = 90


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
            monitoring = _traffic_and_monitoring(services, base, Path(scratch), options, note, say)

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
    return {
        "workspace": WORKSPACE, "datasets": [v1, v2], "diff": diff, "models": versions,
        "monitoring": monitoring,
    }  # fmt: skip


def _traffic_and_monitoring(
    services: Services,
    base: str,
    scratch: Path,
    options: DemoOptions,
    note: Callable[[str], None],
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Sellers' traffic with ratings, then what monitoring makes of it."""
    from appliance.datasets.synthetic import generate
    from appliance.monitoring import alerts

    streams = {
        "normal": generate(
            scratch / "traffic-normal", count=options.traffic_normal, seed=options.seed + 3
        ).path,
        "low": generate(
            scratch / "traffic-low", count=options.traffic_low_light, seed=options.seed + 4,
            low_light_fraction=1.0,
        ).path,
    }  # fmt: skip
    note(
        f"sellers' traffic: {options.traffic_normal} ordinary photos, then "
        f"{options.traffic_low_light} taken in low light; each seller rates the description "
        "(5 when right, 2 when wrong) through POST /v1/predictions/{id}/feedback"
    )
    counts: dict[str, dict[str, int]] = {}
    for lighting, folder in streams.items():
        right = warned = 0
        rows = _rows(folder)
        for row in rows:
            answer = _post(
                f"{base}/v1/endpoints/{ENDPOINT}/predict",
                (folder / row["file_name"]).read_bytes(), "image/png",
            )  # fmt: skip
            correct = answer["description"] == row["text"]
            right += correct
            warned += "low_light" in answer["warnings"]
            _post_json(
                f"{base}/v1/predictions/{answer['id']}/feedback", {"rating": 5 if correct else 2}
            )
        counts[lighting] = {"photos": len(rows), "right": right, "low_light_warnings": warned}
        say(f"   {lighting:<6} {right}/{len(rows)} described exactly, {warned} low_light warnings")
    drift = _get(f"{base}/v1/workspaces/{WORKSPACE}/monitoring/drift?endpoint={ENDPOINT}")
    shown = ", ".join(
        f"{f['feature']} psi {f['psi']:.2f} ks {f['ks']:.2f}{' DRIFT' if f['drifted'] else ''}"
        for f in drift["features"]
        if f["feature"] in ("brightness", "contrast", "sharpness")
    )
    note(f"drift against {drift['reference']} (GET …/monitoring/drift): {shown}")
    alerts.evaluate(services)  # the server's monitor also does this every monitor_interval_s
    firing = [
        f"{a['rule']} ({a['value']:.3g} vs {a['threshold']:.3g})"
        for a in alerts.current(services, WORKSPACE, firing_only=True)
    ]
    note(f"alerts firing on {ENDPOINT}: {', '.join(firing) or 'none'}")
    feedback = _get(f"{base}/v1/workspaces/{WORKSPACE}/monitoring/feedback")["summary"]
    summary = _get(f"{base}/v1/workspaces/{WORKSPACE}/monitoring/summary")["endpoints"][0]
    latency = summary["latency_ms"]
    note(
        f"{summary['predictions']} predictions captured: p50 {latency['p50']:.1f} ms, "
        f"p95 {latency['p95']:.1f} ms; {feedback['count']} ratings, mean "
        f"{feedback['mean_rating']:.2f}"
    )
    dora = _get(f"{base}/v1/workspaces/{WORKSPACE}/monitoring/dora")
    note(
        f"DORA: {dora['deployments']} deployment(s), lead time "
        f"{_hours(dora['lead_time_hours'])}, change failure rate "
        f"{_rate(dora['change_failure_rate'])}, time to restore "
        f"{_hours(dora['time_to_restore_hours'])} ({dora['level']})"
    )
    return {"traffic": counts, "drift": drift, "alerts": firing, "dora": dora}


def _hours(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value * 60:.1f} min" if value < 1 else f"{value:.1f} h"


def _rate(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


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


def _get(url: str) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(url, timeout=600) as response:
            return dict(json.loads(response.read()))
    except urllib.error.HTTPError as exc:
        raise ApplianceError(f"{url} answered {exc.code}: {exc.read().decode()}") from None


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
