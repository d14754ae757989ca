"""Monitoring over real HTTP: every prediction captured exactly once under concurrent load,
durable feedback, brightness drift from a low-light stream, alerts, Prometheus /metrics and
DORA figures. The tiny colour recipe is the model."""

from __future__ import annotations

import io
import json
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families
from serving_harness import running_server, wait_ready

from appliance.datasets.synthetic import ProductAttributes, darken, generate, render
from appliance.runs.launcher import start_run
from appliance.services import Services
from appliance.serving.options import DeployOptions
from appliance.serving.service import Serving

COLOUR = Path(__file__).parent / "recipes" / "colour"
PREDICT = "/v1/endpoints/captions/predict"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("monitoring-home")
    with Services.open(home=home) as services:
        services.workspaces.create("ads")
        photos = generate(home.parent / "monitoring-photos", count=60, seed=4).path
        services.datasets.add("ads", "photos", photos)
        services.recipes.add("ads", COLOUR)
        run = start_run(services, "ads", "colour", "photos", {}).wait()
        assert run["status"] == "succeeded", run["error"]
        Serving(services).deploy("ads", "captions", "colour@1", DeployOptions(max_batch_size=8))
    return home


def open_server(home: Path, **settings: object):  # type: ignore[no-untyped-def]
    """A server over a fresh Services of `home` with extra settings; yields (services, client)."""
    from contextlib import contextmanager

    @contextmanager
    def opened() -> Iterator[tuple[Services, httpx.Client]]:
        with Services.open(home=home, **settings) as services, running_server(services) as client:
            wait_ready(client)
            yield services, client

    return opened()


def photo(lighting: str = "normal", seed: int = 0, fmt: str = "PNG", **save: object) -> bytes:
    rng = random.Random(seed)
    attrs = ProductAttributes(
        rng.choice(["mug", "shoe", "lamp"]), "red", "plain", "white", lighting
    )
    image = render(attrs, size=64, rng=rng)
    if lighting == "low":
        image = darken(image, rng)
    out = io.BytesIO()
    image.save(out, format=fmt, **save)
    return out.getvalue()


def predict(client: httpx.Client, data: bytes) -> dict:
    answer = client.post(PREDICT, content=data, headers={"content-type": "image/png"})
    assert answer.status_code == 200, answer.text
    return answer.json()


def rows_of(services: Services, sql: str, params: tuple = ()) -> list[dict]:
    return services.registry.query(sql, params)


def test_every_prediction_is_captured_exactly_once_under_load(home: Path) -> None:
    ids: list[str] = []
    lock = threading.Lock()
    with open_server(home, capture_thumbnail_rate=1.0) as (services, client):

        def load(worker: int) -> None:
            with httpx.Client(base_url=str(client.base_url), timeout=60) as own:
                for i in range(15):
                    if i % 5 == 4:  # a batch of three now and then
                        body = {
                            "instances": [
                                {"image": _b64(photo(seed=worker * 100 + i + k))} for k in range(3)
                            ]
                        }
                        got = [p["id"] for p in own.post(PREDICT, json=body).json()["predictions"]]
                    else:
                        got = [predict(own, photo(seed=worker * 100 + i))["id"]]
                    with lock:
                        ids.extend(got)

        threads = [threading.Thread(target=load, args=(w,)) for w in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    # Leaving the server flushed every capture; a fresh read sees them all.
    with Services.open(home=home) as services:
        placeholders = ",".join("?" * len(ids))
        rows = rows_of(
            services, f"SELECT * FROM predictions WHERE id IN ({placeholders})", tuple(ids)
        )
    assert len(ids) == 6 * (12 + 3 * 3) and len(set(ids)) == len(ids)
    assert sorted(r["id"] for r in rows) == sorted(ids)
    for row in rows:
        assert row["endpoint"] == "captions" and row["error"] is None
        assert row["description"].endswith("product") and 0 < row["confidence"] <= 1
        assert row["latency_ms"] >= row["inference_ms"] > 0 and row["batch_size"] >= 1
        features = json.loads(row["features"])
        assert features["width"] == 64 and features["brightness"] > 0 and features["sharpness"] > 0
        assert row["thumbnail"] is not None  # rate 1.0: every input kept as a thumbnail


def test_thumbnails_are_small_and_carry_no_metadata(home: Path) -> None:
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    exif[0x8825] = {1: "N"}  # GPS IFD
    big = Image.new("RGB", (400, 300), (200, 120, 40))
    out = io.BytesIO()
    big.save(out, format="JPEG", exif=exif)
    with open_server(home, capture_thumbnail_rate=1.0, capture_thumbnail_size=32) as (
        services,
        client,
    ):
        answer = client.post(
            PREDICT, content=out.getvalue(), headers={"content-type": "image/jpeg"}
        )
        prediction_id = answer.json()["id"]
    with Services.open(home=home) as services:
        thumbnail = services.predictions.thumbnail(prediction_id)
    assert thumbnail is not None
    image = Image.open(io.BytesIO(thumbnail))
    assert max(image.size) == 32 and not image.getexif() and "exif" not in image.info


def test_feedback_is_durable_validated_and_404_for_unknown_ids(home: Path) -> None:
    with open_server(home) as (services, client):
        first = predict(client, photo(seed=1))["id"]
        # Straight after the answer: the capture may not be on disk yet, feedback still lands.
        answer = client.post(
            f"/v1/predictions/{first}/feedback", json={"rating": 4, "comment": "ok"}
        )
        assert answer.status_code == 201, answer.text
        assert (
            client.post(f"/v1/predictions/{first}/feedback", json={"thumb": "down"}).status_code
            == 201
        )
        unknown = client.post("/v1/predictions/0123456789abcdef/feedback", json={"rating": 5})
        assert unknown.status_code == 404 and "no prediction" in unknown.json()["error"]
        for bad in ({"rating": 9}, {"rating": 0}, {"thumb": "sideways"}, {}, {"rating": "five"}):
            refused = client.post(f"/v1/predictions/{first}/feedback", json=bad)
            assert refused.status_code == 400, (bad, refused.text)
            assert refused.json()["error"]
        shown = client.get(f"/v1/predictions/{first}").json()
        assert shown["id"] == first and shown["workspace"] == "ads"
        listed = client.get("/v1/workspaces/ads/monitoring/feedback").json()
        assert listed["summary"]["thumbs_down"] >= 1
    # A new process (new Services) still has both pieces of feedback.
    with Services.open(home=home) as services:
        stored = rows_of(
            services,
            "SELECT rating, thumb, comment FROM feedback WHERE prediction_id = ?",
            (first,),
        )
    assert stored == [
        {"rating": 4, "thumb": None, "comment": "ok"},
        {"rating": None, "thumb": "down", "comment": ""},
    ]


def test_low_light_stream_is_brightness_drift_and_fires_an_alert(
    tmp_path: Path, home: Path
) -> None:
    import shutil

    own = tmp_path / "home"
    shutil.copytree(home, own)
    with Services.open(home=own) as services:  # only this test's traffic counts
        services.registry.write(lambda db: db.execute("DELETE FROM predictions").close())
    # Traffic drawn like the training data (other seed): no drift until the lights go down.
    traffic = generate(tmp_path / "traffic", count=30, seed=77).path
    normal = [p.read_bytes() for p in sorted(traffic.glob("*.png"))]
    assert len(normal) == 30
    with open_server(own, monitor_interval_s=1, drift_min_samples=20) as (services, client):
        for data in normal:
            predict(client, data)
        before = client.get(
            "/v1/workspaces/ads/monitoring/drift", params={"endpoint": "captions"}
        ).json()
        assert before["predictions"] >= 30 and before["reference"] == "photos@1"
        assert "brightness" not in before["drifted"], before["features"]
        for seed, data in enumerate(normal * 2):
            predict(client, _darkened(data, seed))
        after = client.get(
            "/v1/workspaces/ads/monitoring/drift", params={"endpoint": "captions", "window": "1h"}
        ).json()
        brightness = next(f for f in after["features"] if f["feature"] == "brightness")
        assert "brightness" in after["drifted"] and brightness["psi"] >= 0.25
        assert brightness["current_mean"] < brightness["reference_mean"]
        # The monitor thread evaluates the rules every second: the drift alert fires.
        deadline = time.time() + 30
        while time.time() < deadline:
            alerts = client.get("/v1/workspaces/ads/monitoring/alerts").json()
            firing = {(r["endpoint"], r["rule"]) for r in alerts["rules"] if r["state"] == "firing"}
            if ("captions", "drift_psi") in firing:
                break
            time.sleep(0.2)
        assert ("captions", "drift_psi") in firing and ("captions", "low_light_rate") in firing
        events = [e for e in alerts["events"] if e["kind"] == "alert_firing"]
        assert events, alerts
        drift_event = next(e for e in events if e["detail"]["rule"] == "drift_psi")
        # The rule fires at the first tick that sees a drifted feature: while the dark photos
        # are still arriving that may be brightness_p99 before brightness itself.
        drifted = set(drift_event["detail"]["drifted"])
        assert drifted and drifted <= {"brightness", "brightness_p99", "contrast", "sharpness"}
        # The gauge is the monitor's last tick: one that ran before the last dark photo arrived
        # reads a smaller psi, so wait for a tick that saw them all.
        gauge = ("appliance_drift_psi", (("endpoint", "captions"), ("feature", "brightness")))
        deadline = time.time() + 30
        while (psi := _metrics(client).get(gauge, 0.0)) < 0.25 and time.time() < deadline:
            time.sleep(0.2)
        assert psi >= 0.25
        summary = client.get("/v1/workspaces/ads/monitoring/summary").json()["endpoints"][0]
        assert summary["predictions"] == 90 and summary["low_light_rate"] > 0.5
        assert summary["latency_ms"]["p95"] >= summary["latency_ms"]["p50"] > 0


def test_prometheus_metrics_count_requests_and_refusals(home: Path) -> None:
    with open_server(home) as (_services, client):
        for seed in range(5):
            predict(client, photo(seed=seed))
        assert (
            client.post(
                PREDICT, content=b"not an image", headers={"content-type": "image/png"}
            ).status_code
            == 415
        )
        answer = client.get("/metrics")
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
        metrics = _metrics(client)
    labels = (("endpoint", "captions"), ("model", "colour"), ("outcome", "ok"), ("version", "1"))
    assert metrics[("appliance_predictions_total", labels)] == 5
    assert (
        metrics[
            ("appliance_rejected_requests_total", (("endpoint", "captions"), ("status", "415")))
        ]
        == 1
    )
    assert metrics[("appliance_prediction_latency_seconds_count", (("endpoint", "captions"),))] == 5
    assert metrics[("appliance_captures_dropped_total", ())] == 0
    assert ("appliance_batch_queue_depth", (("endpoint", "captions"),)) in metrics
    assert ("appliance_capture_queue_depth", ()) in metrics


def test_dora_over_http(home: Path) -> None:
    with open_server(home) as (_services, client):
        dora = client.get("/v1/workspaces/ads/monitoring/dora", params={"since": "7d"}).json()
        assert dora["deployments"] >= 1 and dora["lead_time_hours"] is not None
        assert dora["level"] in ("elite", "high", "medium", "low")
        bad = client.get("/v1/workspaces/ads/monitoring/dora", params={"since": "soon"})
        assert bad.status_code == 400 and "duration" in bad.json()["error"]
        assert client.get("/v1/workspaces/nope/monitoring/dora").status_code == 404
        # The fixture deployed on the box; a later test of this module promotes as `ann`.
        assert set(dora["authors"]) <= {"local", "ann"}
        assert dora["authors"]["local"]["deployments"] == dora["deployments"]


def test_dora_names_the_user_who_promoted_over_http(home: Path) -> None:
    from appliance.access.roles import Role

    with open_server(home, require_auth=True) as (services, client):
        _, token = services.users.add("ann", Role.developer)
        ann = {"authorization": f"Bearer {token}"}
        promoted = client.post(
            "/v1/workspaces/ads/models/colour/promote",
            json={"version": 1, "alias": "staging"},
            headers=ann,
        )
        assert promoted.status_code == 200, promoted.text
        dora = client.get("/v1/workspaces/ads/monitoring/dora", headers=ann).json()
    assert dora["authors"]["ann"] == {"deployments": 0, "promotions": 1, "approvals": 0}
    assert dora["changes"][0] | {"at": ""} == {
        "at": "", "kind": "promoted", "subject": "colour@staging", "version": "colour@1",
        "actor": "ann",
    }  # fmt: skip


def _metrics(client: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = client.get("/metrics").text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _darkened(data: bytes, seed: int) -> bytes:
    image = darken(Image.open(io.BytesIO(data)).convert("RGB"), random.Random(seed))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()
