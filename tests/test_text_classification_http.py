"""The text-classification loop over real HTTP, as for captions: generated ads versioned, the
text-classifier recipe trained in a tracked run, deployed int8 by a hot swap, then predict (JSON,
batch, text/plain), OIP v2, capture with text features, feedback and drift; hostile texts get a
4xx that says what to fix."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from serving_harness import running_server, wait_ready

from appliance.datasets.ad_text import generate
from appliance.runs.launcher import start_run
from appliance.services import Services

AD = {"title": "Vintage mug", "text": "Red striped mug, barely used. 8 EUR. Pickup only."}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("text-home")
    with Services.open(home=home) as services:
        services.workspaces.create("ads")
        ads = generate(home.parent / "text-ads", count=1000, seed=5).path
        services.datasets.add("ads", "ads", ads)
        run = start_run(services, "ads", "text-classifier", "ads", {}).wait()
        assert run["status"] == "succeeded", run["error"]
    return home


@pytest.fixture(scope="module")
def client(home: Path) -> Iterator[httpx.Client]:
    with Services.open(home=home) as services, running_server(services) as client:
        wait_ready(client)
        deploy = {"workspace": "ads", "endpoint": "router", "model": "text-classifier@1",
                  "quantization": "int8", "device": "cpu"}  # fmt: skip
        answer = client.post("/v1/deployments", json=deploy)
        assert answer.status_code == 201, answer.text
        yield client


def test_predict_answers_a_label_and_every_score(client: httpx.Client) -> None:
    answer = client.post("/v1/endpoints/router/predict", json=AD)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["label"] == "mug" and body["model"] == "text-classifier"
    scores = body["scores"]
    assert list(scores) == sorted(scores, key=lambda k: -scores[k])  # best first
    assert abs(sum(scores.values()) - 1) < 0.01
    # The run calibrated the version: its confidence is the chance that the label is right,
    # not the label's softmax score, and below the version's threshold it warns uncertain.
    assert 0 < body["confidence"] < 1 and body["confidence"] != scores["mug"]
    assert set(body["warnings"]) <= {"uncertain"} and set(body["reasons"]) == set(body["warnings"])
    assert body["batch_size"] >= 1 and "description" not in body

    batch = client.post(
        "/v1/endpoints/router/predict",
        json={"instances": [AD, {"text": "Office chair, black, adjustable height."}]},
    )
    assert [p["label"] for p in batch.json()["predictions"]] == ["mug", "chair"]
    plain = client.post(
        "/v1/endpoints/router/predict", params={"title": "Lamp for sale"},
        content="White desk lamp with a glass shade, works fine.",
        headers={"content-type": "text/plain"},
    )  # fmt: skip
    assert plain.status_code == 200 and plain.json()["label"] == "lamp"


def test_oip_v2_metadata_and_infer_come_from_the_task(client: httpx.Client) -> None:
    metadata = client.get("/v2/models/router").json()
    assert [i["name"] for i in metadata["inputs"]] == ["text", "title"]
    assert [o["name"] for o in metadata["outputs"]] == ["label", "confidence"]
    infer = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [AD["text"]]}]}
    answer = client.post("/v2/models/router/infer", json=infer)
    assert answer.status_code == 200, answer.text
    label, confidence = answer.json()["outputs"]
    assert label["data"] == ["mug"] and 0 < confidence["data"][0] <= 1


@pytest.mark.parametrize(
    ("request_kwargs", "status", "message"),
    [
        ({"json": {"text": ""}}, 400, "the text is empty"),
        ({"json": {"text": "   "}}, 400, "the text is empty"),
        ({"json": {"text": 5}}, 400, "needs a 'text' field holding a string"),
        ({"json": {"text": "a mug", "title": ["x"]}}, 400, "'title' must be a string"),
        ({"json": {"text": "a mug\x00 for sale"}}, 400, "NUL character"),
        ({"json": {"text": "mug " * 6000}}, 400, "over the 20,000 limit"),
        ({"json": ["a mug"]}, 400, "must be an object"),
        ({"content": b"\xff\xfe not utf-8", "headers": {"content-type": "text/plain"}}, 400,
         "not UTF-8"),
        ({"content": b"x" * 10_100_000, "headers": {"content-type": "text/plain"}}, 413,
         "larger than"),
        ({"content": b"\x89PNG", "headers": {"content-type": "image/png"}}, 415,
         "send JSON {\"text\""),
        ({"files": {"image": ("a.png", b"x", "image/png")}}, 400, "no text in the request"),
    ],
)  # fmt: skip
def test_hostile_texts_get_a_4xx_that_says_what_to_fix(
    client: httpx.Client, request_kwargs: dict, status: int, message: str
) -> None:
    answer = client.post("/v1/endpoints/router/predict", **request_kwargs)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"]


def test_captured_with_text_features_rated_and_watched_for_drift(
    client: httpx.Client, home: Path
) -> None:
    answer = client.post("/v1/endpoints/router/predict", json=AD).json()
    rated = client.post(
        f"/v1/predictions/{answer['id']}/feedback", json={"thumb": "up", "comment": "right"}
    )
    assert rated.status_code == 201, rated.text
    drift = client.get("/v1/workspaces/ads/monitoring/drift", params={"endpoint": "router"})
    assert drift.status_code == 200, drift.text
    assert {"chars", "words", "digit_share"} <= {f["feature"] for f in drift.json()["features"]}
    with Services.open(home=home) as services:
        row = services.predictions.get(answer["id"])
    assert row["description"] == "mug" and row["output"]["label"] == "mug"
    assert row["features"]["words"] == len(AD["text"].split()) and row["keywords"] == ""
    assert AD["text"] not in json.dumps(row)  # the ad's text is not kept


def test_batch_predict_classifies_a_folder_of_texts(
    client: httpx.Client, home: Path, tmp_path: Path
) -> None:
    from appliance.scheduler.runner import run_job

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.txt").write_text(AD["text"])
    (inbox / "b.txt").write_text("Office chair, black, adjustable height. Pickup only.")
    (inbox / "c.txt").write_bytes(b"\xff\xfe not text")
    with Services.open(home=home) as services:  # no server in this process: loads the version
        job = services.jobs.add(
            "ads", "route", "batch_predict", {"cron": "0 0 1 1 *"}, target="router",
            params={"source": str(inbox), "output": str(tmp_path / "out")},
        )  # fmt: skip
        outcome = run_job(services, job, "manual")
    assert outcome["status"] == "succeeded", outcome["detail"]
    assert outcome["detail"]["described"] == 2 and outcome["detail"]["unreadable"] == 1
    lines = Path(outcome["detail"]["output"]).read_text().splitlines()
    answers = {line["file"]: line for line in map(json.loads, lines)}
    assert answers["a.txt"]["label"] == "mug" and answers["b.txt"]["label"] == "chair"
    assert "not UTF-8" in answers["c.txt"]["error"] and answers["a.txt"]["scores"]["mug"] > 0.5
