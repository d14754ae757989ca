"""The platform report over a hand-built registry (real SQLite, real artifact store): which
workspace is adopted, the capabilities coverage matrix, and cost figures that add up to the run
and serving time recorded, with every expected figure worked out here by hand."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image

from appliance.events import record_event
from appliance.platform.cost import disk_bytes, energy
from appliance.platform.feedback import PlatformFeedback
from appliance.platform.report import platform_report, window
from appliance.registry import new_id
from appliance.services import Services
from appliance.serving.options import DeployOptions

NOW = datetime.now(UTC)
# Prices that make the arithmetic readable: 1/1000 per CPU-second, 1/100 per GPU-second,
# 30 per GB-month (a 30-day window holds each byte for one month).
PRICES = {"cost_cpu_hour": 3.6, "cost_gpu_hour": 36.0, "cost_gb_month": 30.0}


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def ago(**delta: float) -> str:
    return stamp(NOW - timedelta(**delta))


def workspace_id(services: Services, name: str) -> str:
    return str(services.workspaces.get(name)["id"])


def finished_run(
    services: Services, ws: str, wall_s: float, cpu_s: float | None, gpu_s: float | None = None
) -> str:
    """A run that ended an hour ago after `wall_s` seconds, with the usage the child records."""
    run = services.runs.create(ws, recipe="colour")
    usage = [(k, v, 0) for k, v in (("cpu_seconds", cpu_s), ("gpu_seconds", gpu_s)) if v]
    if usage:
        services.runs.log_metrics(run["id"], usage)
    services.runs.set_status(run["id"], "succeeded")
    services.runs.update(run["id"], started_at=ago(hours=1, seconds=wall_s), ended_at=ago(hours=1))
    return str(run["id"])


def predictions(
    services: Services, ws: str, endpoint: str, rows: list[tuple[float | None, int]]
) -> list[str]:
    """Captured predictions of `endpoint` made a minute ago: (inference_ms, batch_size) each."""
    ws_id = workspace_id(services, ws)
    ids = [new_id() for _ in rows]
    services.registry.write(
        lambda db: db.table("predictions").insert_all(
            {
                "id": pid,
                "workspace_id": ws_id,
                "endpoint": endpoint,
                "created_at": ago(minutes=1),
                "latency_ms": (ms or 0) + 1,
                "inference_ms": ms,
                "batch_size": size,
                "error": None if ms is not None else "boom",
            }
            for pid, (ms, size) in zip(ids, rows, strict=True)
        )
    )
    return ids


def png(colour: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(out, format="PNG")
    return out.getvalue()


def folder(path: Path, photos: dict[str, str]) -> Path:
    """An imagefolder of one-colour photos, {file name: colour}."""
    path.mkdir(parents=True)
    for name, colour in photos.items():
        (path / name).write_bytes(png(colour))
    rows = [{"file_name": name, "text": f"{colour} square"} for name, colour in photos.items()]
    (path / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def distinct_bytes(*folders: Path) -> int:
    """The bytes of the folders' files, each content once: what a content store holds."""
    sizes = {
        hashlib.sha256(f.read_bytes()).hexdigest(): f.stat().st_size
        for folder in folders
        for f in folder.iterdir()
    }
    return sum(sizes.values())


@pytest.fixture
def home(tmp_path: Path, tiny_model: Path) -> Iterator[Services]:
    """Three teams: `ads` uses everything (its model in production, on a GPU, quantized),
    `routing` trains and serves on CPU without a production alias, `idle` holds nothing."""
    services = Services.open(home=tmp_path / "platform-home", **PRICES)
    for name in ("ads", "routing", "idle"):
        services.workspaces.create(name)

    # ads: two versions of a dataset sharing one text file, a run, a model, a gate, a deploy.
    v1 = folder(tmp_path / "d1", {"a.png": "red"})
    v2 = folder(tmp_path / "d2", {"a.png": "red", "b.png": "blue"})
    services.datasets.add("ads", "notes", v1)
    services.datasets.add("ads", "notes", v2)
    finished_run(services, "ads", wall_s=600, cpu_s=900.0, gpu_s=300.0)
    version = services.models.register("ads", "captioner", tiny_model)
    services.models.set_alias("ads", "captioner@1", "production")
    ads = workspace_id(services, "ads")
    services.registry.write(
        lambda db: record_event(
            db, ads, "promoted", "captioner@production", model_version_id=version["id"],
            metric="exact_match", candidate_value=0.9, current_value=None,
        )
    )  # fmt: skip
    options = DeployOptions(quantization="int8", device="cuda")
    services.deployments.record("ads", "captions", version, options)
    served = predictions(services, "ads", "captions", [(40.0, 4), (40.0, 4), (10.0, 1), (None, 1)])
    services.predictions.add_feedback(served[0], rating=5)
    services.jobs.add(
        "ads", "nightly", "retrain", {"interval_s": 86_400}, "captioner",
        {"recipe": "colour", "dataset": "notes"},
    )  # fmt: skip
    services.registry.write(
        lambda db: db.table("review_items").insert(
            {
                "id": new_id(),
                "workspace_id": ads,
                "endpoint": "captions",
                "prediction_id": served[2],
                "reason": "uncertain",
                "kind": "text",
                "input_text": "x",
                "answer_field": "text",
                "status": "accepted",
                "reviewed_by": "cli:ana",
                "bytes": 7,
                "created_at": ago(minutes=1),
            }
        )
    )
    # routing: a run from before usage was recorded (its wall time counts), a CPU deployment
    # of a version no alias names, predictions.
    finished_run(services, "routing", wall_s=120, cpu_s=None)
    routed = services.models.register("routing", "router", tiny_model)
    services.deployments.record("routing", "route", routed, DeployOptions(device="auto"))
    predictions(services, "routing", "route", [(25.0, 1), (25.0, 1)])
    # Old traffic, outside a one-day window.
    services.registry.write(
        lambda db: db.execute(
            "UPDATE predictions SET created_at = ? WHERE rowid = (SELECT min(rowid) FROM"
            " predictions WHERE endpoint = 'route')",
            [ago(days=3)],
        ).close()
    )
    yield services
    services.close()


def test_coverage_matrix_names_what_each_workspace_uses(home: Services) -> None:
    report = platform_report(home, *window(86_400))
    matrix = report["coverage"]["matrix"]
    assert matrix["ads"] == dict.fromkeys(
        ["dataset_versions", "tracked_runs", "gate", "quantized_deployment", "monitoring",
         "feedback", "retraining", "review_loop"], True,
    )  # fmt: skip
    assert {k for k, used in matrix["routing"].items() if used} == {"tracked_runs", "monitoring"}
    assert not any(matrix["idle"].values())
    assert report["coverage"]["share"] == {"ads": 1.0, "idle": 0.0, "routing": 0.25}
    assert report["coverage"]["used_by"]["tracked_runs"] == 2
    json.dumps(report)  # a plain JSON-able dict


def test_adoption_needs_production_and_activity(home: Services) -> None:
    adoption = platform_report(home, *window(86_400))["adoption"]
    assert (adoption["adopted"], adoption["workspaces"], adoption["rate"]) == (1, 3, 0.333)
    assert adoption["adopted_workspaces"] == ["ads"]
    by_name = {row["workspace"]: row for row in adoption["per_workspace"]}
    assert by_name["ads"]["production_endpoints"] == ["captions"]
    assert by_name["ads"]["predictions"] == 4
    # routing answers traffic but serves no production version; idle does nothing.
    assert by_name["routing"]["production_endpoints"] == [] and by_name["routing"]["runs"] == 1
    assert by_name["routing"]["predictions"] == 1  # the other one is three days old
    assert not by_name["idle"]["adopted"]
    # A window that ends before anything happened sees no activity anywhere.
    quiet = platform_report(home, NOW - timedelta(days=30), NOW - timedelta(days=10))
    assert quiet["adoption"]["adopted"] == 0


def test_cost_adds_up_to_the_recorded_run_and_serving_time(home: Services) -> None:
    report = platform_report(home, *window(30 * 86_400))
    cost = {row["workspace"]: row for row in report["cost"]["per_workspace"]}
    ads, routing, idle = cost["ads"], cost["routing"], cost["idle"]

    # Training: ads' run recorded 900 CPU-s and 300 GPU-s; routing's recorded none, so its
    # 120 s of wall time counts as CPU time.
    assert ads["training"] == {
        "runs": 1, "runs_by_wall_time": 0, "cpu_seconds": 900.0, "gpu_seconds": 300.0
    }  # fmt: skip
    assert routing["training"] == {
        "runs": 1, "runs_by_wall_time": 1, "cpu_seconds": 120.0, "gpu_seconds": 0.0
    }  # fmt: skip
    # Serving: ads' endpoint runs on cuda: 40/4 + 40/4 + 10/1 ms = 30 ms of GPU time (the failed
    # one recorded no forward pass); routing's on 'auto', as CPU: 25 + 25 ms over 30 days.
    assert ads["serving"] == {"predictions": 3, "cpu_seconds": 0.0, "gpu_seconds": 0.03}
    assert routing["serving"] == {"predictions": 2, "cpu_seconds": 0.05, "gpu_seconds": 0.0}

    # Disk: the manifests of both versions, a.png once, b.png, both metadata files, the model
    # folder, and the 7 bytes of the review item's kept input.
    store = home.store
    versions = home.datasets.versions("ads", "notes")
    manifests = sum(store.path(v["digest"]).stat().st_size for v in versions)
    files = distinct_bytes(home.settings.home.parent / "d1", home.settings.home.parent / "d2")
    model_bytes = home.models.get("ads", "captioner@1")["size"]
    assert ads["disk_bytes"] == {
        "datasets": manifests + files, "runs": 0, "models": model_bytes, "review": 7,
        "total": manifests + files + model_bytes + 7,
    }  # fmt: skip
    assert idle["disk_bytes"]["total"] == 0

    # Priced: 900 CPU-s at 1/1000, 300.03 GPU-s at 1/100, and over 30 days the disk at 30 per GB.
    disk_cost = ads["disk_bytes"]["total"] / 1e9 * 30
    assert ads["cost"]["cpu"] == pytest.approx(0.9, abs=1e-4)
    assert ads["cost"]["gpu"] == pytest.approx(3.0003, abs=1e-4)
    assert ads["cost"]["disk"] == pytest.approx(disk_cost, abs=1e-4)
    assert ads["cost"]["total"] == pytest.approx(0.9 + 3.0003 + disk_cost, abs=1e-3)
    assert routing["cost"]["cpu"] == pytest.approx(0.12005, abs=1e-4)
    # One user each: ads names a reviewer (cli:ana), the others none (counted as one).
    assert (ads["users"], ads["named_users"]) == (1, ["cli:ana"])
    assert report["cost"]["users"] == 3
    total = ads["cost"]["total"] + routing["cost"]["total"] + idle["cost"]["total"]
    assert report["cost"]["total"] == pytest.approx(total, abs=1e-3)
    assert report["cost"]["per_user"] == pytest.approx(total / 3, abs=1e-3)


def test_a_second_named_user_halves_the_cost_per_user(home: Services) -> None:
    PlatformFeedback(home.registry).add(4, source="cli", user="cli:ben", workspace="ads")
    ads = next(
        row
        for row in platform_report(home, *window(86_400))["cost"]["per_workspace"]
        if row["workspace"] == "ads"
    )
    assert ads["named_users"] == ["cli:ana", "cli:ben"]
    assert ads["per_user"] == pytest.approx(ads["cost"]["total"] / 2, abs=1e-4)


def test_shared_blobs_count_once_and_run_artifacts_count(
    services: Services, tmp_path: Path
) -> None:
    services.workspaces.create("ws")
    data = folder(tmp_path / "d", {"x.png": "green"})
    services.datasets.add("ws", "one", data)
    services.datasets.add("ws", "two", data)  # the same files under another name
    run = services.runs.create("ws")
    (tmp_path / "log.txt").write_bytes(b"l" * 30)
    services.runs.log_artifact(run["id"], data / "x.png")  # the dataset's blob again
    services.runs.log_artifact(run["id"], tmp_path / "log.txt")
    found = disk_bytes(services.registry, services.store, workspace_id(services, "ws"))
    manifest = services.datasets.get("ws", "one")["digest"]
    manifest_size = services.store.path(manifest).stat().st_size
    # Both datasets are one manifest over the same blobs; x.png counts with them, not the run.
    assert found["datasets"] == manifest_size + distinct_bytes(data)
    assert found["runs"] == 30


def test_energy_reads_rapl_where_exposed_and_says_when_not(tmp_path: Path) -> None:
    assert energy(tmp_path / "none") == {
        "available": False, "domains": [], "note": "energy: RAPL not exposed on this machine"
    }  # fmt: skip
    package = tmp_path / "intel-rapl:0"
    package.mkdir()
    (package / "name").write_text("package-0\n")
    (package / "energy_uj").write_text("12500000\n")
    found = energy(tmp_path)
    assert found["available"] is True
    assert found["domains"] == [{"domain": "intel-rapl:0", "name": "package-0", "joules": 12.5}]


def test_happiness_trend_buckets_the_window(home: Services) -> None:
    feedback = PlatformFeedback(home.registry)
    for rating in (2, 4):
        feedback.add(rating, "fine", source="tui", user="tui:ana")
    # One older rating, two days ago, moved there by hand.
    feedback.add(1, "", source="http")
    home.registry.write(
        lambda db: db.execute(
            "UPDATE platform_feedback SET created_at = ? WHERE rating = 1", [ago(days=2, hours=1)]
        ).close()
    )
    happiness = platform_report(home, *window(7 * 86_400))["happiness"]
    assert (happiness["count"], happiness["mean"]) == (3, pytest.approx(7 / 3, abs=1e-3))
    assert happiness["histogram"] == {"1": 1, "2": 1, "3": 0, "4": 1, "5": 0}
    trend = happiness["trend"]
    assert len(trend) == 7 and happiness["bucket_s"] == 86_400
    assert [b["count"] for b in trend] == [0, 0, 0, 0, 1, 0, 2]
    assert trend[-1]["mean"] == 3.0 and trend[0]["mean"] is None
    assert set(trend[0]) == {"start", "count", "mean"}
    assert [c["rating"] for c in happiness["latest_comments"]] == [4, 2]  # newest first
