"""Retraining the text classifier through jobs, as for captions: a watched folder of ad texts
gains a category (cars), the dataset watch (added and run through the real CLI, with no server
running) versions it and starts the retrain job, which trains a new text-classifier version on
the new dataset version, gates it against production on accuracy, promotes and deploys it; a
batch prediction then answers a folder of .txt ads with the deployed version."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from appliance.cli import cli
from appliance.datasets.ad_text import DEFAULT_CATEGORIES, generate
from appliance.models.promotion import promote
from appliance.runs.launcher import start_run
from appliance.services import Services

FAR_AWAY = "0 0 1 1 *"  # once a year: only run-now and triggers start these jobs


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def watched(services: Services, tmp_path: Path) -> Path:
    """Workspace `ads` with ads@1 (ad texts without cars, from the returned folder) and
    text-classifier@1 trained on it, in production."""
    services.workspaces.create("ads")
    folder = generate(tmp_path / "inbox", count=600, seed=5).path
    services.datasets.add("ads", "ads", folder)
    run = start_run(services, "ads", "text-classifier", "ads", {}).wait()
    assert run["status"] == "succeeded", run["error"]
    promote(services, "ads", "text-classifier@1")
    return folder


@pytest.mark.slow  # two text classifiers trained end to end on the scheduler: 75 s
def test_a_new_category_in_the_watched_folder_retrains_gates_and_deploys(
    services: Services, watched: Path, tmp_path: Path
) -> None:
    retrain = ("--kind", "retrain", "--target", "text-classifier", "--recipe", "text-classifier",
               "--dataset", "ads", "--endpoint", "router", "--cron", FAR_AWAY)  # fmt: skip
    assert invoke("job", "add", "ads", "retrain", *retrain)[0] == 0
    watch = ("--kind", "dataset_watch", "--target", "ads", "--source", str(watched),
             "--retrain", "retrain", "--cron", FAR_AWAY)  # fmt: skip
    assert invoke("job", "add", "ads", "watch", *watch)[0] == 0

    code, out, err = invoke("job", "run-now", "ads", "watch")
    assert code == 0, err
    assert "skipped" in out and "changed=False" in out  # ads@1 is what the folder holds

    # Cars land: the folder's metadata.jsonl is replaced by one with the new category.
    landed = generate(tmp_path / "with-cars", count=720, seed=6,
                      categories=[*DEFAULT_CATEGORIES, "car"])  # fmt: skip
    assert set(landed.categories.values()) == {80}
    shutil.copyfile(landed.path / "metadata.jsonl", watched / "metadata.jsonl")
    code, out, err = invoke("job", "run-now", "ads", "watch")
    assert code == 0, err
    assert "dataset=ads@2" in out and "triggered=retrain" in out

    ads2 = services.datasets.get("ads", "ads@2")
    assert (
        ads2["row_count"] == 720
        and ads2["parent_digest"] == services.datasets.get("ads", "ads@1")["digest"]
    )
    (job_run,) = services.jobs.runs(services.jobs.get("ads", "retrain")["id"])
    assert job_run["status"] == "succeeded", job_run["detail"]
    assert job_run["cause"] == "dataset:ads@2"
    detail = job_run["detail"]
    assert detail["dataset"] == "ads@2" and detail["version_ref"] == "text-classifier@2"
    assert {"accuracy", "macro_f1"} <= set(detail["metrics"])
    assert detail["metrics"]["accuracy"] > 0.8 and detail["metrics"]["macro_f1"] > 0.8
    # The gate compared both versions on the held-out rows of the new data: version 1 never
    # says 'car', so it is the worse.
    assert detail["gate"].startswith("accuracy ") and "for version 1" in detail["gate"]
    assert "held-out rows of ads@2" in detail["gate"]
    assert detail["deployed"] is True and detail["endpoint"] == "router"

    version = services.models.get("ads", "text-classifier@production")
    assert version["version"] == 2 and version["id"] == detail["version_id"]
    assert version["task"] == "text-classification" and version["runtime"] == "recipe"
    assert (version["dataset_id"], version["dataset_digest"]) == (
        ads2["dataset_id"], ads2["digest"],
    )  # fmt: skip
    run = services.runs.get(job_run["run_id"])
    assert run["job_id"] == services.jobs.get("ads", "retrain")["id"]
    assert run["cause"] == "dataset:ads@2"
    promoted = services.registry.query(
        "SELECT detail FROM events WHERE kind = 'promoted' ORDER BY id DESC LIMIT 1"
    )
    gate = json.loads(promoted[0]["detail"])
    assert gate["metric"] == "accuracy" and gate["version"] == 2 and gate["previous"] == 1
    assert gate["dataset"] == "ads@2" and gate["candidate_value"] > gate["current_value"]
    deployed = services.deployments.get("ads", "router")
    assert deployed["model_version_id"] == version["id"]

    # A batch prediction answers .txt ads with the deployed text classifier.
    inbox = tmp_path / "texts"
    inbox.mkdir()
    (inbox / "car.txt").write_text(
        "Grey family car from Vanta. Full service history, new tyres. 9500 euros."
    )
    (inbox / "mug.txt").write_text(
        "White porcelain coffee mug from Kaffeehaus. Handle intact, dishwasher safe. 12 euros."
    )
    (inbox / "broken.txt").write_bytes(b"\xff\xfe not utf-8")
    batch = ("--kind", "batch_predict", "--target", "router", "--source", str(inbox),
             "--output", str(tmp_path / "answers"), "--cron", FAR_AWAY)  # fmt: skip
    assert invoke("job", "add", "ads", "batch", *batch)[0] == 0
    code, out, err = invoke("job", "run-now", "ads", "batch")
    assert code == 0, err
    (written,) = (tmp_path / "answers").glob("*.jsonl")
    lines = {row["file"]: row for row in map(json.loads, written.read_text().splitlines())}
    assert lines["car.txt"]["label"] == "car" and lines["mug.txt"]["label"] == "mug", lines
    assert (lines["car.txt"]["model"], lines["car.txt"]["version"]) == ("text-classifier", 2)
    assert "utf-8" in lines["broken.txt"]["error"].lower()
