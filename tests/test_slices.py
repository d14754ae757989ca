"""Quality by slice: the words of the answers, the lighting of the photos, a classifier's labels,
keywords and a numeric feature's quartiles group a window's predictions; the slice whose
calibrated confidences and ratings were made worse comes first, against the whole window; a
window without a calibration is ranked by its ratings; the HTTP route over the real app answers
what its schema says; the CLI prints the table and its --json parses. Real registry rows
throughout: a calibration stored with appliance.trust.store, predictions and feedback as
capture and the feedback route write them."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema_rs
import pytest
import sqlite_utils
from click.testing import CliRunner
from serving_harness import running_server
from test_quality_estimate import TRUST, add_version, ago, deploy

from appliance.cli import cli
from appliance.errors import InvalidInput, NotFound
from appliance.monitoring import report, slices
from appliance.monitoring.quality import estimate
from appliance.registry import utcnow
from appliance.services import Services

MUG = "red striped mug on a white background"
CAR = "blue plain car on a grey background"


def captured(
    services: Services, ws_id: str, endpoint: str, version_id: str, count: int, confidence: float,
    start: int, features: dict[str, float] | None = None, description: str = MUG,
    keywords: str = "", output: dict[str, Any] | None = None, ratings: list[int] | None = None,
) -> list[str]:  # fmt: skip
    """`count` answers (ids `{endpoint}-{start + i}`), a second apart, 30 minutes old; under 0.5
    they warn uncertain. The i-th of `ratings` rates the i-th answer. Feature `contrast` is the
    answer's number. Returns the ids."""
    rows = [
        {"id": f"{endpoint}-{start + i}", "workspace_id": ws_id, "endpoint": endpoint,
         "model_version_id": version_id, "created_at": ago(minutes=30, seconds=count - i),
         "latency_ms": 5.0, "queue_ms": 1.0, "inference_ms": 2.0, "batch_size": 1,
         "features": json.dumps({**(features or {}), "contrast": float(start + i)}),
         "keywords": keywords, "description": description,
         "output": json.dumps(output or {"description": description}), "confidence": confidence,
         "warnings": json.dumps(["uncertain"] if confidence < 0.5 else []), "error": None}
        for i in range(count)
    ]  # fmt: skip
    feedback = [
        {"prediction_id": row["id"], "rating": rating, "thumb": None, "comment": "",
         "created_at": utcnow()}
        for row, rating in zip(rows, ratings or [], strict=False)
    ]  # fmt: skip

    def write(db: sqlite_utils.Database) -> None:
        db.table("predictions").insert_all(rows)
        if feedback:
            db.table("feedback").insert_all(feedback)

    services.registry.write(write)
    return [str(r["id"]) for r in rows]


BRIGHT = {"brightness": 150.0, "brightness_p99": 220.0}
DARK = {"brightness": 30.0, "brightness_p99": 60.0}


@pytest.fixture
def captions(services: Services) -> Services:
    """Endpoint `captions` serves the calibrated v2: 50 bright mugs at 0.95 (10 rated 5), 10
    dark mugs at 0.6, 3 teal mugs at 0.95, 30 bright cars at 0.3 (10 rated 1, 2 rated 3); and
    10 green cars of the uncalibrated v1 at 0.99 without features: in the slices, but not in
    any estimate."""
    ws_id = str(services.workspaces.create("ads")["id"])
    add_version(services, ws_id, "v1", 1)
    add_version(services, ws_id, "v2", 2, trust=TRUST)
    deploy(services, ws_id, "captions", "v2")
    add = lambda *a, **kw: captured(services, ws_id, "captions", *a, **kw)  # noqa: E731
    add("v2", 50, 0.95, 0, BRIGHT, keywords="mug cup", ratings=[5] * 10)
    add("v2", 10, 0.6, 50, DARK, keywords="mug cup")
    add("v2", 3, 0.95, 60, BRIGHT, description=MUG.replace("red", "teal"), keywords="mug cup")
    add("v2", 30, 0.3, 63, BRIGHT, description=CAR, keywords="car", ratings=[1] * 10 + [3] * 2)
    add("v1", 10, 0.99, 93, description=CAR.replace("blue", "green"))
    return services


CALIBRATED = [0.95] * 53 + [0.6] * 10 + [0.3] * 30


def by_name(found: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["slice"]: s for s in found["slices"]}


def test_the_worst_slice_is_the_one_made_worse(captions: Services) -> None:
    found = report.slices(captions, "ads", "captions", 3600)
    overall = found["overall"]
    value, low, high = estimate(CALIBRATED)
    assert overall["predictions"] == 103
    assert overall["estimated_quality"] == {
        "value": round(value, 4), "low": round(low, 4), "high": round(high, 4), "predictions": 93
    }  # fmt: skip
    assert overall["ratings"] == 22 and overall["rated_low"] == round(10 / 22, 4)
    assert found["metric"] == "exact_match" and found["reference"] == 0.9

    # The car words are worst, at the cars' 0.3: the uncalibrated green cars add predictions,
    # never confidences. Equal estimates: the larger slice first, then by name.
    worst = found["slices"]
    assert [s["slice"] for s in worst[:4]] == ["word=car", "word=grey", "word=plain", "word=blue"]
    car = worst[0]
    assert car["predictions"] == 40 and car["estimated_quality"]["predictions"] == 30
    assert car["estimated_quality"]["value"] == 0.3
    assert car["vs_all"] == round(0.3 - round(value, 4), 4) < -0.3
    assert car["uncertain_rate"] == 0.75  # 30 of 40
    assert car["ratings"] == 12 and car["mean_rating"] == round(16 / 12, 4)
    assert car["rated_low"] == round(10 / 12, 4) and car["rated_low_vs_all"] > 0.3
    assert worst[4]["slice"] == "lighting=dark" and worst[4]["estimated_quality"]["value"] == 0.6

    named = by_name(found)
    assert named["word=mug"]["estimated_quality"]["value"] > value  # the mugs are better
    assert named["word=mug"]["predictions"] == 63
    assert named["lighting=normal"]["predictions"] == 83  # the green cars have no brightness
    # Stop words are no slice, nor is a word every answer has; a word of 3 answers is too few.
    assert not {"word=on", "word=a", "word=background", "word=teal"} & set(named)
    assert found["left_out"] == 1  # teal
    assert named["word=green"]["estimated_quality"] is None and worst[-1]["slice"] == "word=green"

    assert [s["slice"] for s in report.slices(captions, "ads", "captions", top=2)["slices"]] == [
        "word=car", "word=grey"
    ]  # fmt: skip
    small = report.slices(captions, "ads", "captions", min_rows=3)
    assert "word=teal" in by_name(small) and small["left_out"] == 0


def test_lighting_slices(captions: Services) -> None:
    found = report.slices(captions, "ads", "captions", by="lighting")
    dark, normal = found["slices"]
    assert dark["slice"] == "lighting=dark" and dark["predictions"] == 10
    assert dark["estimated_quality"]["value"] == 0.6 and dark["uncertain_rate"] == 0.0
    assert normal["slice"] == "lighting=normal" and normal["predictions"] == 83
    # The threshold is the low_light_brightness setting: at 50 every photo is bright.
    keys = slices.slice_keys([{"features": DARK}, {"features": {}}], "lighting", 50)
    assert keys == [[("lighting", "normal")], []]


def test_slices_by_keywords_and_by_a_feature_in_quartiles(captions: Services) -> None:
    found = report.slices(captions, "ads", "captions", by="keywords")
    assert [s["slice"] for s in found["slices"]] == [
        "keywords=car", "keywords=mug cup", "keywords=(none)"
    ]  # fmt: skip
    assert found["slices"][0]["estimated_quality"]["value"] == 0.3
    assert found["by"] == "keywords"

    # Feature `contrast` is each answer's number, 0 to 102: the cars are 63-92, the green ones
    # (uncalibrated) 93-102.
    quarters = report.slices(captions, "ads", "captions", by="contrast")["slices"]
    assert [(s["slice"], s["predictions"]) for s in quarters] == [
        ("contrast=77..102", 26), ("contrast=52..76", 25), ("contrast=26..51", 26),
        ("contrast=0..25", 26),
    ]  # fmt: skip
    assert quarters[0]["estimated_quality"]["value"] == 0.3  # 16 cars of v2
    assert {s["dimension"] for s in quarters} == {"contrast"}

    with pytest.raises(InvalidInput, match="no prediction of the window has a field 'colour'"):
        report.slices(captions, "ads", "captions", by="colour")
    with pytest.raises(InvalidInput, match="at least 1"):
        report.slices(captions, "ads", "captions", min_rows=0)
    with pytest.raises(NotFound, match="no endpoint 'nowhere'"):
        report.slices(captions, "ads", "nowhere")


def test_labels_without_a_calibration_rank_by_ratings(services: Services) -> None:
    ws_id = str(services.workspaces.create("ads")["id"])
    add_version(services, ws_id, "c1", 1, task="text-classification")
    deploy(services, ws_id, "router", "c1")
    for n, (label, ratings) in enumerate(
        [("cars", [5] * 8 + [2] * 2), ("shoes", [1] * 6 + [4] * 4), ("home garden", [3] * 10)]
    ):
        captured(services, ws_id, "router", "c1", 12, 0.9, 12 * n, {"chars": 40.0},
                 description=label, output={"label": label, "scores": {label: 0.9}},
                 ratings=ratings)  # fmt: skip
    found = report.slices(services, "ads", "router")
    assert found["overall"]["estimated_quality"] is None and found["metric"] is None
    shoes, cars, home = found["slices"]
    assert (shoes["slice"], cars["slice"], home["slice"]) == (
        "label=shoes", "label=cars", "label=home garden"
    )  # fmt: skip
    assert shoes["rated_low"] == 0.6 and shoes["vs_all"] is None
    assert shoes["rated_low_vs_all"] == round(0.6 - round(8 / 30, 4), 4)
    assert home["rated_low"] == 0.0 and home["mean_rating"] == 3.0


def reviewed(services: Services, endpoint: str, outcomes: dict[str, str]) -> None:
    """Review items of these predictions with these statuses, as the review store keeps them."""
    rows = [
        {"id": f"review-{pid}", "workspace_id": services.workspaces.get("ads")["id"],
         "endpoint": endpoint, "prediction_id": pid, "reason": "uncertain", "kind": "image",
         "answer_field": "text", "status": status, "created_at": utcnow()}
        for pid, status in outcomes.items()
    ]  # fmt: skip
    services.registry.write(lambda db: db.table("review_items").insert_all(rows))


def test_corrections_in_review_count_per_slice(captions: Services) -> None:
    # 10 blue cars reviewed (8 corrected, 2 accepted), 5 bright mugs accepted; a dismissed and a
    # pending item judged nothing.
    cars = [f"captions-{63 + i}" for i in range(10)]
    outcomes = {p: "corrected" for p in cars[:8]} | {p: "accepted" for p in cars[8:]}
    outcomes |= {f"captions-{i}": "accepted" for i in range(5)}
    outcomes |= {"captions-20": "dismissed", "captions-21": "pending"}
    reviewed(captions, "captions", outcomes)
    found = report.slices(captions, "ads", "captions")
    overall = found["overall"]
    assert overall["reviewed"] == 15 and overall["corrected_rate"] == round(8 / 15, 4)
    named = by_name(found)
    car = named["word=car"]
    assert car["reviewed"] == 10 and car["corrected_rate"] == 0.8
    assert car["corrected_rate_vs_all"] == round(0.8 - round(8 / 15, 4), 4)
    assert named["word=mug"]["reviewed"] == 5 and named["word=mug"]["corrected_rate"] == 0.0
    assert (
        named["lighting=dark"]["reviewed"] == 0 and named["lighting=dark"]["corrected_rate"] is None
    )
    result = CliRunner().invoke(cli, ["monitor", "slices", "ads", "--endpoint", "captions"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[1].endswith("; 15 reviewed, 53.3% corrected")
    assert lines[3].split()[-1] == "CORRECTED" and lines[4].split()[-3:] == ["80.0%", "of", "10"]


def test_without_ratings_the_share_corrected_ranks_the_slices(services: Services) -> None:
    ws_id = str(services.workspaces.create("ads")["id"])
    add_version(services, ws_id, "c1", 1, task="text-classification")
    deploy(services, ws_id, "router", "c1")
    ids = {}
    for n, label in enumerate(("cars", "shoes")):
        ids[label] = captured(services, ws_id, "router", "c1", 12, 0.9, 12 * n, {"chars": 40.0},
                              description=label, output={"label": label})  # fmt: skip
    reviewed(services, "router", {pid: "accepted" for pid in ids["cars"][:6]}
             | {pid: "corrected" for pid in ids["shoes"][:4]} | {ids["shoes"][4]: "accepted"})  # fmt: skip
    shoes, cars = report.slices(services, "ads", "router")["slices"]
    assert (shoes["slice"], cars["slice"]) == ("label=shoes", "label=cars")
    assert shoes["rated_low"] is None and shoes["corrected_rate"] == 0.8
    assert shoes["corrected_rate_vs_all"] == round(0.8 - round(4 / 11, 4), 4)
    result = CliRunner().invoke(cli, ["monitor", "slices", "ads", "--endpoint", "router"])
    assert "+44% corrected" in result.stdout, result.stdout


def strict(openapi: dict[str, Any], schema: dict[str, Any]) -> jsonschema_rs.Validator:
    """A validator of `schema` that refuses a property an object schema does not name."""
    root = copy.deepcopy({**schema, "components": openapi["components"]})

    def close(node: Any) -> None:
        if isinstance(node, dict):
            if "properties" in node:
                node.setdefault("additionalProperties", False)
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    close(root)
    return jsonschema_rs.Draft202012Validator(root)


def test_the_http_route_answers_what_its_schema_says(captions: Services) -> None:
    route = "/v1/workspaces/{workspace}/monitoring/slices"
    with running_server(captions, restore=False) as client:
        answer = client.get(
            "/v1/workspaces/ads/monitoring/slices", params={"endpoint": "captions", "window": "2h"}
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        openapi = client.get("/schema/openapi.json").json()
        by_keywords = client.get(
            "/v1/workspaces/ads/monitoring/slices",
            params={"endpoint": "captions", "by": "keywords", "min_rows": 20},
        )
        unknown = client.get("/v1/workspaces/ads/monitoring/slices", params={"by": "colour"})
        missing = client.get("/v1/workspaces/ads/monitoring/slices", params={"endpoint": "nowhere"})
    assert body["window_s"] == 7200 and body["slices"][0]["slice"] == "word=car"
    assert body["slices"][0]["vs_all"] < -0.3
    schema = openapi["paths"][route]["get"]["responses"]["200"]["content"]["application/json"]
    errors = [str(e) for e in strict(openapi, schema["schema"]).iter_errors(body)]
    assert not errors, errors
    assert by_keywords.status_code == 200
    assert [s["slice"] for s in by_keywords.json()["slices"]] == [
        "keywords=car",
        "keywords=mug cup",
    ]
    assert by_keywords.json()["left_out"] == 1
    assert unknown.status_code == 400 and "colour" in unknown.text
    assert missing.status_code == 404


def test_the_cli_prints_the_worst_slices_first(captions: Services) -> None:
    result = CliRunner().invoke(cli, ["monitor", "slices", "ads", "--endpoint", "captions"])
    assert result.exit_code == 0, result.output
    print(result.stdout)
    lines = result.stdout.splitlines()
    value, low, high = estimate(CALIBRATED)
    assert lines[0] == (
        "ads/captions · last 1h · 103 answered predictions · slices of at least 10, worst first"
    )
    assert lines[1].startswith(
        f"  all  estimated exact_match {value:.2f} [{low:.2f}, {high:.2f}] vs held-out 0.90;"
    )
    header = lines[3].split()
    assert header[:2] == ["SLICE", "PREDICTIONS"] and "UNCERTAIN" in header
    first = lines[4].split()
    assert first[:4] == ["word=car", "40", "0.30", f"[{0.3 - 1.96 * (0.21 / 30) ** 0.5:.2f},"]
    assert f"{0.3 - round(value, 4):+.2f}" in first and "83.3%" in first
    assert lines[-1] == "1 slice of fewer than 10 left out"

    result = CliRunner().invoke(
        cli, ["monitor", "slices", "ads", "--endpoint", "captions", "--by", "lighting", "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [s["slice"] for s in data["slices"]] == ["lighting=dark", "lighting=normal"]
    assert data["by"] == "lighting" and data["overall"]["predictions"] == 103

    result = CliRunner().invoke(cli, ["monitor", "slices", "ads", "--by", "colour"])
    assert result.exit_code == 1 and "error: no prediction of the window has a field" in (
        result.output
    )
