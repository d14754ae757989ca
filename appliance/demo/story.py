"""`appliance demo`: the reference story, unattended and offline, told step by step.

Product photos are generated into the workspace `classified-ads` and versioned; the captioner
recipe trains v1 (no low-light augmentation) in a child process, evaluates it on held-out photos
and registers it; the gate promotes it to `production`, which is deployed int8 on CPU and answers
sellers' photos over HTTP. Sellers' traffic follows — ordinary photos, then a run of low-light
ones — and they rate the descriptions; monitoring shows the uncertain warnings on the wrong
answers (v1 is calibrated at evaluation), the label-free quality estimate beside the ratings,
brightness and embedding drift as firing alerts and the DORA figures; sellers go through the
review queue, and their corrections become the dataset's next version. Sellers then offer cars,
which v1 never saw: the embedding test says so. Then the closed loop runs on the server's
scheduler (demo/loop.py): car photos land, a dataset watch versions them, v2 retrains with
low-light augmentation and deploys through the gate, and a degraded v3 is rolled back by the
post-deploy watch. The model change follows (demo/keywords.py): sellers' keywords land as a
new column, and a keyword model is trained, gated on exact match and keyword adherence, and
deployed. The event timeline, the DORA figures, the platform metrics and the maturity report
(an HTML page under the home, demo/reports.py) close the story.
"""

from __future__ import annotations

import itertools
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from appliance.datasets.imagefolder import METADATA
from appliance.demo.home import fresh_workspace
from appliance.demo.keywords import model_change
from appliance.demo.loop import closed_loop, pause_watch, sample_images
from appliance.demo.monitoring import embedding_line, hours, rate, traffic_and_monitoring
from appliance.demo.options import (
    DATASET,
    ENDPOINT,
    RECIPE,
    SUMMARY_METRICS,
    WORKSPACE,
    DemoOptions,
    rows_of,
)  # fmt: skip
from appliance.demo.reports import closing_reports, rate_platform
from appliance.errors import ApplianceError
from appliance.models.promotion import promote
from appliance.monitoring import report
from appliance.runs.launcher import start_run
from appliance.server.background import serving_in_background
from appliance.server.client import ServerClient
from appliance.services import Services


def run_demo(
    services: Services,
    options: DemoOptions,
    say: Callable[[str], None],
    on_poll: Callable[[dict[str, Any]], None] = lambda run: None,
    replace: bool = False,
) -> dict[str, Any]:
    """Tell the story in `services`' home; a `classified-ads` workspace the demo did not make
    there is refused before anything is touched, unless `replace` (see demo/home.py)."""
    from appliance.datasets.synthetic import generate

    step = itertools.count(1)

    def note(text: str) -> None:
        say(f"{next(step)}. {text}")

    if (removed := fresh_workspace(services, replace)) is not None:
        say(removed)
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
        # v1 without low-light augmentation: the story's retrain adds it.
        first_params = {**options.train_params, "low_light_fraction": "0"}
        run = start_run(services, WORKSPACE, RECIPE, dataset_ref, first_params).wait(on_poll)
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
        with (
            serving_in_background(services) as base,
            ServerClient(base, services.settings) as server,
        ):
            server.wait_ready()
            deployment = {
                "workspace": WORKSPACE, "endpoint": ENDPOINT,
                "model": f"{model['name']}@production",
                "quantization": options.quantization, "device": "cpu",
            }  # fmt: skip
            server.post_json("/v1/deployments", deployment)
            note(
                f"deployed {model['name']}@{production['version']} (production) at endpoint "
                f"{ENDPOINT}: {options.quantization} on CPU, through POST /v1/deployments"
            )
            note(f"six sellers' photos through POST /v1/endpoints/{ENDPOINT}/predict:")
            for row in rows_of(samples.path):
                answer = server.post_bytes(
                    f"/v1/endpoints/{ENDPOINT}/predict",
                    (samples.path / row["file_name"]).read_bytes(), "image/png",
                )  # fmt: skip
                mark = "✓" if answer["description"] == row["text"] else "✗"
                warn = f" [{', '.join(answer['warnings'])}]" if answer["warnings"] else ""
                say(
                    f"   {mark} {row['lighting']:<6} {answer['description']!r} "
                    f"conf {answer['confidence']:.2f} {answer['latency_ms']:.1f} ms{warn}"
                )
            monitoring = traffic_and_monitoring(services, server, Path(scratch), options, note, say)

            cars = Path(scratch) / "cars"
            generate(
                cars, count=options.new_category_count, seed=options.seed + 1,
                low_light_fraction=options.low_light_fraction, categories=["car"],
            )  # fmt: skip
            _sell_cars(server, cars, options.car_traffic, note, say)
            added = _append_imagefolder(photos, cars, prefix="car-")
            note(f"a new category lands: {added} car photos are copied into {photos.name}/")
            traffic = sample_images(Path(scratch) / "traffic-normal")
            traffic += sample_images(Path(scratch) / "traffic-low")
            loop = closed_loop(services, server, photos, traffic, options, note, say, on_poll)
            keywords = model_change(
                services, server, photos, Path(scratch), traffic, options, note, say, on_poll
            )
            rate_platform(server)
        v2 = datasets.get(WORKSPACE, DATASET)
        diff = datasets.diff(WORKSPACE, f"{DATASET}@{v1['digest']}", f"{DATASET}@{v2['digest']}")
        note(
            f"diff @{v1['version']} → @{v2['version']}: {len(diff['added'])} added, "
            f"{len(diff['removed'])} removed, {len(diff['changed'])} changed "
            f"(metadata.jsonl updated)"
        )
    versions = services.models.versions(WORKSPACE, model["name"])
    say("")
    say("timeline (the event log DORA is computed from):")
    for line in timeline(services):
        say(f"   {line}")
    dora = report.dora(services, WORKSPACE)
    note(
        f"DORA over the demo: {dora['deployments']} deployment(s), lead time "
        f"{hours(dora['lead_time_hours'])}, change failure rate "
        f"{rate(dora['change_failure_rate'])}, time to restore "
        f"{hours(dora['time_to_restore_hours'])}"
    )
    reports = closing_reports(services, note, say)
    pause_watch(services)  # after the maturity report, which would count a paused watch
    return {
        "workspace": WORKSPACE, "datasets": [v1, v2], "diff": diff, "models": versions,
        "monitoring": monitoring, "loop": loop, "keywords": keywords, "dora": dora,
        "reports": reports,
    }  # fmt: skip


TIMELINE_KINDS = (
    "promoted", "promotion_refused", "deployed", "rolled_back", "deploy_failed", "alert_firing",
    "alert_resolved", "watch_failed", "deploy_pending", "job_failed",
)  # fmt: skip


def timeline(services: Services) -> list[str]:
    """The workspace's events that tell the story, oldest first."""
    ws = services.workspaces.get(WORKSPACE)
    lines = []
    for event in reversed(services.events.list(ws["id"], limit=500)):
        if event["kind"] not in TIMELINE_KINDS:
            continue
        detail = event["detail"]
        version = detail.get("version")
        what = detail.get("rule") or (f"v{version}" if isinstance(version, int) else version or "")
        lines.append(f"{event['created_at'][11:19]}  {event['kind']:<18} {event['subject']} {what}")
    return lines


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


def _sell_cars(
    server: ServerClient, cars: Path, count: int, note: Callable[[str], None],
    say: Callable[[str], None],
) -> None:  # fmt: skip
    """Sellers start offering cars, which v1 has never seen: every description is wrong, and
    what tells is the model's own view of the photos (embedding drift), not the decoder."""
    rows = rows_of(cars)[:count]
    warned = 0
    for row in rows:
        answer = server.post_bytes(
            f"/v1/endpoints/{ENDPOINT}/predict", (cars / row["file_name"]).read_bytes(),
            "image/png",
        )  # fmt: skip
        warned += "uncertain" in answer["warnings"]
    note(
        f"sellers start offering cars: {len(rows)} car photos, none described right (v1 never "
        f"saw one); uncertain warned on {warned} of them"
    )
    drift = server.get(f"/v1/workspaces/{WORKSPACE}/monitoring/drift?endpoint={ENDPOINT}")
    say(f"   {embedding_line(drift)}")


def _append_imagefolder(target: Path, extra: Path, prefix: str) -> int:
    """Copy `extra`'s images into `target` under new names and append their metadata rows."""
    rows = rows_of(extra)
    with (target / METADATA).open("a") as metadata:
        for row in rows:
            name = f"{prefix}{row['file_name']}"
            shutil.copyfile(extra / row["file_name"], target / name)
            metadata.write(json.dumps({**row, "file_name": name}) + "\n")
    return len(rows)
