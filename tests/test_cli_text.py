"""The text-classification loop through the real CLI, every step with `--json` parsed as a
script would: generated ad texts versioned, compared (label counts included), the
text-classifier trained in a tracked run, its version shown with its task and architecture,
deployed here (no server), and its captured traffic read back by `monitor summary` and
`monitor drift` with the task's text features."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from appliance.cli import cli
from appliance.datasets.ad_text import DEFAULT_CATEGORIES
from appliance.monitoring.capture import Capture
from appliance.registry import new_id, utcnow
from appliance.services import Services
from appliance.serving.observer import CaptureRecord
from appliance.tasks import get_task

TEXT_FEATURES = get_task("text-classification").features  # chars, words, digit_share, …


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def as_json(*args: str) -> Any:
    """Run a command with --json: it succeeds and its whole stdout is one JSON document."""
    code, out, err = invoke(*args, "--json")
    assert code == 0, err
    return json.loads(out)


def test_the_text_loop_speaks_json(tmp_path: Path) -> None:
    assert invoke("workspace", "create", "ads")[0] == 0

    first = as_json("dataset", "generate", str(tmp_path / "d1"), "--kind", "ad-text",
                    "--count", "400", "--seed", "1")  # fmt: skip
    assert first["count"] == 400 and first["ambiguous"] >= 0
    assert first["categories"] == dict.fromkeys(DEFAULT_CATEGORIES, 50)
    cars = as_json("dataset", "generate", str(tmp_path / "d2"), "--kind", "ad-text",
                   "--count", "450", "--seed", "2", "--categories", "mug,lamp,car")  # fmt: skip
    assert cars["categories"] == {"mug": 150, "lamp": 150, "car": 150}

    added = as_json("dataset", "add", "ads", "ads", first["path"])
    assert (added["version"], added["row_count"], added["file_count"]) == (1, 400, 1)
    assert added["created"] is True and added["ignored"] == []
    code, out, _ = invoke("dataset", "add", "ads", "ads", cars["path"])
    assert code == 0 and out.startswith("added ads@2") and ": 450 rows, " in out

    versions = as_json("dataset", "versions", "ads", "ads")
    assert [(v["version"], v["row_count"]) for v in versions] == [(1, 400), (2, 450)]
    assert versions[1]["parent_digest"] == versions[0]["digest"]
    code, out, _ = invoke("dataset", "versions", "ads", "ads")
    assert code == 0 and out.split()[:3] == ["VERSION", "DIGEST", "ROWS"]  # not IMAGES

    diff = as_json("dataset", "diff", "ads", "ads@1", "ads@2")
    assert (diff["from"]["version"], diff["to"]["version"]) == (1, 2)
    assert len(diff["added"]) == 50 and diff["removed"] == [] and diff["changed"] == []
    assert diff["added"][0] == "ad-00400"  # text rows are named by their id
    assert diff["labels"]["car"] == {"from": 0, "to": 150}
    assert diff["labels"]["mug"] == {"from": 50, "to": 150}
    assert diff["labels"]["hat"] == {"from": 50, "to": 0}
    code, out, _ = invoke("dataset", "diff", "ads", "ads@1", "ads@2")
    assert code == 0 and "car 0 → 150" in out and "mug 50 → 150" in out

    run = as_json("run", "start", "ads", "--recipe", "text-classifier", "--dataset", "ads@1")
    assert run["status"] == "succeeded", run["error"]
    assert run["recipe"] == "text-classifier" and run["dataset_digest"] == versions[0]["digest"]
    version = run["model_version"]
    assert (version["name"], version["version"]) == ("text-classifier", 1)
    assert version["task"] == "text-classification" and version["runtime"] == "recipe"
    metrics = version["metrics"]
    assert 0 < metrics["accuracy"] <= 1 and 0 < metrics["macro_f1"] <= 1
    assert {f"acc_{label}" for label in DEFAULT_CATEGORIES} <= set(metrics)

    (shown,) = as_json("model", "show", "ads", "text-classifier@1")
    assert shown["id"] == version["id"] and shown["metrics"] == metrics
    info = shown["info"]
    assert info["architecture"] == "BertForSequenceClassification"
    assert info["parameters"] > 0 and info["weight_bytes"] > 0 and info["dtypes"] == ["F32"]
    assert [v["version"] for v in as_json("model", "show", "ads", "text-classifier")] == [1]
    code, out, _ = invoke("model", "show", "ads", "text-classifier")
    assert code == 0
    assert "text-classification, recipe runtime, BertForSequenceClassification, " in out

    deployed = as_json("deploy", "create", "ads", "router", "text-classifier@1", "--device", "cpu")
    assert deployed["endpoint"] == "router" and deployed["model_version_id"] == version["id"]
    with Services.open() as services:
        capture_ads(services, version, Path(cars["path"]) / "metadata.jsonl", 40)

    summary = as_json("monitor", "summary", "ads")
    (router,) = summary["endpoints"]
    assert router["endpoint"] == "router" and router["predictions"] == 40
    assert router["errors"] == 0 and router["mean_confidence"] == 0.9
    assert as_json("monitor", "summary", "ads", "--endpoint", "router") == summary

    drift = as_json("monitor", "drift", "ads", "router")
    assert (drift["model"], drift["version"], drift["reference"]) == (
        "text-classifier", 1, "ads@1",
    )  # fmt: skip
    assert drift["predictions"] == 40
    features = {f["feature"]: f for f in drift["features"]}
    assert set(TEXT_FEATURES) <= set(features)
    assert not {"width", "brightness"} & set(features)  # no image features for a text model
    assert all(features[f]["reference_mean"] is not None for f in TEXT_FEATURES)

    feedback = as_json("monitor", "feedback", "ads")
    assert feedback["summary"]["count"] == 0 and feedback["feedback"] == []


def capture_ads(services: Services, version: dict[str, Any], metadata: Path, count: int) -> None:
    """`count` predictions of ads from `metadata`, captured as serving captures them: the
    task's features and answer, never the text."""
    task = get_task("text-classification")
    capture = Capture(services.registry, services.settings)
    rows = [json.loads(line) for line in metadata.read_text().splitlines()[:count]]
    for row in rows:
        item = task.decode({"text": row["text"], "title": row["title"]}, services.settings)
        capture.record(
            CaptureRecord(
                id=new_id(), workspace="ads", endpoint="router", model_version_id=version["id"],
                created_at=utcnow(), latency_ms=5.0, model=version["name"],
                version=version["version"], features=item.features, words=task.words(item.values),
                description=row["label"], output={"label": row["label"]}, confidence=0.9,
            )
        )  # fmt: skip
    capture.flush()
    capture.close()
