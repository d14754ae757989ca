"""The label-free quality estimate: the mean calibrated confidence tracks the share of right
answers of a stream whose answers are right with exactly those chances, its interval covers the
realised share about 95 times in 100; the summary reports it for calibrated versions only, with
the held-out score and the ratings beside it; and the `estimated_quality` rule fires when a
window's confidences drop, and resolves when they come back. Real registry rows throughout: a
calibration is stored with appliance.trust.store, predictions and feedback as capture and the
feedback route write them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
import sqlite_utils
from click.testing import CliRunner

from appliance.cli import cli
from appliance.monitoring import alerts, report
from appliance.monitoring.quality import estimate
from appliance.registry import utcnow
from appliance.services import Services
from appliance.trust import store
from appliance.trust.fit import Fitted

TRUST = {"metrics": {"heldout_accuracy": 0.9, "ece": 0.03}, "uncertain": {"threshold": 0.5}}


def ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def add_version(
    services: Services, ws_id: str, version_id: str, number: int, task: str = "image-to-text",
    trust: dict[str, Any] | None = None, reference: np.ndarray | None = None,
) -> None:  # fmt: skip
    """A model version row of model `captioner` (created on first use), with a calibration
    (and reference embeddings) stored when `trust` is given."""
    now = utcnow()

    def write(db: sqlite_utils.Database) -> None:
        if not db.execute("SELECT 1 FROM models WHERE id = 'm1'").fetchone():
            db.table("models").insert(
                {"id": "m1", "workspace_id": ws_id, "name": "captioner", "created_at": now}
            )
        db.table("model_versions").insert(
            {"id": version_id, "model_id": "m1", "version": number, "path": f"models/{version_id}",
             "digest": version_id, "size": 1, "created_at": now, "task": task}
        )  # fmt: skip

    services.registry.write(write)
    if trust is not None:
        store.save(services.registry, version_id, Fitted(trust=trust, reference=reference))


def deploy(services: Services, ws_id: str, endpoint: str, version_id: str) -> None:
    now = utcnow()
    services.registry.write(
        lambda db: db.table("deployments").insert(
            {
                "id": f"d-{endpoint}",
                "workspace_id": ws_id,
                "endpoint": endpoint,
                "model_version_id": version_id,
                "created_at": now,
                "updated_at": now,
            }
        )
    )


def predictions(
    services: Services, ws_id: str, endpoint: str, version_id: str,
    confidences: list[float], start: int = 0, minutes_ago: float = 30, **values: Any,
) -> list[str]:  # fmt: skip
    """One captured answer per confidence (ids `{endpoint}-{start + i}`), a second apart, the
    newest `minutes_ago` minutes old; those under 0.5 warn uncertain. Returns the ids."""
    count = len(confidences)
    rows = [
        {"id": f"{endpoint}-{start + i}", "workspace_id": ws_id, "endpoint": endpoint,
         "model_version_id": version_id,
         "created_at": ago(minutes=minutes_ago, seconds=count - i), "latency_ms": 5.0,
         "queue_ms": 1.0, "inference_ms": 2.0, "batch_size": 1, "features": "{}",
         "description": "a red mug", "confidence": p,
         "warnings": json.dumps(["uncertain"] if p < 0.5 else []), "error": None, **values}
        for i, p in enumerate(confidences)
    ]  # fmt: skip
    services.registry.write(lambda db: db.table("predictions").insert_all(rows))
    return [r["id"] for r in rows]


@pytest.fixture
def ws_id(services: Services) -> str:
    return str(services.workspaces.create("ads")["id"])


# -- the estimate itself ----------------------------------------------------------------------


def test_the_estimate_tracks_the_accuracy_of_a_calibrated_stream() -> None:
    # Seed 0 (of seeds 0-9, seed 7's realised share falls outside its 95% interval: the next
    # test checks how often that happens).
    rng = np.random.default_rng(0)
    p = rng.beta(5, 2, size=500)  # calibrated confidences, mostly high
    correct = rng.random(500) < p  # each answer right with exactly its confidence
    value, low, high = estimate(p.tolist())
    realised = float(correct.mean())
    assert abs(value - realised) <= 0.07
    assert low <= realised <= high
    assert value == pytest.approx(p.mean())
    # mean ± 1.96 √(Σ p(1-p)) / n
    assert high - value == pytest.approx(1.959964 * np.sqrt((p * (1 - p)).sum()) / 500)


def test_the_interval_covers_the_realised_share_95_times_in_100() -> None:
    rng = np.random.default_rng(11)
    covered = 0
    trials = 400
    for _ in range(trials):
        p = rng.uniform(0.2, 1.0, size=300)
        realised = float((rng.random(300) < p).mean())
        _, low, high = estimate(p)
        covered += low <= realised <= high
    assert 0.92 <= covered / trials <= 0.98


def test_the_estimate_skips_unknowns_clips_and_refuses_nothing() -> None:
    assert estimate([1.0, 1.0]) == (1.0, 1.0, 1.0)
    value, low, high = estimate([None, 0.5, float("nan"), 1.7, -0.2])  # type: ignore[list-item]
    assert value == pytest.approx(0.5)  # 0.5, 1 and 0
    assert 0.0 <= low < value < high <= 1.0
    with pytest.raises(ValueError, match="no calibrated confidence"):
        estimate([None, float("nan")])


# -- the summary ------------------------------------------------------------------------------


def test_the_summary_estimates_quality_from_calibrated_versions_only(
    services: Services, ws_id: str
) -> None:
    add_version(services, ws_id, "v1", 1)  # served its model's own confidence: not calibrated
    add_version(services, ws_id, "v2", 2, trust=TRUST)
    deploy(services, ws_id, "captions", "v2")
    predictions(services, ws_id, "captions", "v1", [0.99] * 10, minutes_ago=50)
    ids = predictions(services, ws_id, "captions", "v2", [0.9, 0.8, 0.7, 0.4, 0.2], start=10)
    feedback = [(ids[0], 5), (ids[1], 4), (ids[2], 2), (ids[2], 3), (ids[3], 1)]
    services.registry.write(
        lambda db: db.table("feedback").insert_all(
            {
                "prediction_id": pid,
                "rating": r,
                "thumb": None,
                "comment": "",
                "created_at": utcnow(),
            }
            for pid, r in feedback
        )
    )
    (captions,) = report.summary(services, "ads", "captions", 3600)["endpoints"]
    quality = captions["estimated_quality"]
    value, low, high = estimate([0.9, 0.8, 0.7, 0.4, 0.2])  # v1's 0.99s are left out
    assert quality == {
        "value": round(value, 4), "low": round(low, 4), "high": round(high, 4),
        "predictions": 5, "reference": 0.9, "metric": "exact_match",
        # rated predictions: 5, 4, mean(2, 3) = 2.5 and 1: two of four at 4 or more
        "feedback": 0.5, "rated": 4,
    }  # fmt: skip
    assert captions["uncertain_rate"] == round(2 / 15, 4)
    trend = captions["trend"]
    known = [v for v in trend["estimated_quality"] if v is not None]
    assert known == [round(value, 4)]  # all five in one five-minute bucket
    assert [v for v in trend["uncertain_rate"] if v] == [0.4]
    assert len(trend["estimated_quality"]) == len(trend["count"]) == report.TREND_BUCKETS

    # A classifier's version: its estimate is of accuracy.
    add_version(services, ws_id, "c1", 3, task="text-classification", trust=TRUST)
    deploy(services, ws_id, "router", "c1")
    predictions(services, ws_id, "router", "c1", [0.6] * 4)
    (router,) = report.summary(services, "ads", "router", 3600)["endpoints"]
    assert router["estimated_quality"]["metric"] == "accuracy"
    assert router["estimated_quality"]["feedback"] is None
    assert router["estimated_quality"]["rated"] == 0

    # No calibrated version in the window: no estimate.
    add_version(services, ws_id, "u1", 4)
    deploy(services, ws_id, "plain", "u1")
    predictions(services, ws_id, "plain", "u1", [0.99] * 4)
    (plain,) = report.summary(services, "ads", "plain", 3600)["endpoints"]
    assert plain["estimated_quality"] is None
    assert plain["trend"]["estimated_quality"] == [None] * report.TREND_BUCKETS


def test_the_cli_prints_the_estimate_beside_the_ratings(services: Services, ws_id: str) -> None:
    add_version(services, ws_id, "v2", 2, trust={**TRUST, "metrics": {"heldout_accuracy": 0.96}})
    deploy(services, ws_id, "captions", "v2")
    ids = predictions(services, ws_id, "captions", "v2", [0.9] * 30 + [0.7] * 10)
    services.registry.write(
        lambda db: db.table("feedback").insert_all(
            {
                "prediction_id": pid,
                "rating": 5 if i % 4 else 2,
                "thumb": None,
                "comment": "",
                "created_at": utcnow(),
            }
            for i, pid in enumerate(ids)
        )
    )
    result = CliRunner().invoke(cli, ["monitor", "summary", "ads"])
    assert result.exit_code == 0, result.stderr
    print(result.stdout)
    value, low, high = estimate([0.9] * 30 + [0.7] * 10)
    assert (
        f"quality      estimated exact_match {value:.2f} [{low:.2f}, {high:.2f}]"
        " vs held-out 0.96; from ratings 0.75 (40 rated)"
    ) in result.stdout
    assert "uncertain    0.0%" in result.stdout
    assert "    quality      " in result.stdout  # its trend
    result = CliRunner().invoke(cli, ["monitor", "summary", "ads", "--json"])
    (captions,) = json.loads(result.stdout)["endpoints"]
    assert captions["estimated_quality"]["rated"] == 40
    assert captions["estimated_quality"]["reference"] == 0.96


# -- the alert rule ---------------------------------------------------------------------------


def test_the_quality_alert_fires_when_confidences_drop_and_resolves_after(
    isolated_home: Any,
) -> None:
    # Each evaluation reads the newest 100 predictions: each batch of 100 is a new window.
    with Services.open(home=isolated_home, monitor_sample_rows=100) as services:
        ws_id = str(services.workspaces.create("ads")["id"])
        add_version(services, ws_id, "v2", 2, trust=TRUST)
        deploy(services, ws_id, "captions", "v2")
        rng = np.random.default_rng(3)

        def window(mean: float, start: int, minutes_ago: float) -> list[alerts.Transition]:
            confidences = np.clip(rng.normal(mean, 0.05, 100), 0, 1).round(3).tolist()
            predictions(services, ws_id, "captions", "v2", confidences, start, minutes_ago)
            return [t for t in alerts.evaluate(services) if t.rule == "estimated_quality"]

        assert window(0.88, 0, 40) == []  # 0.02 below held-out 0.9: ok (and no event)
        state = {r["rule"]: r for r in alerts.current(services, "ads")}["estimated_quality"]
        assert state["state"] == "ok" and state["value"] == pytest.approx(0.02, abs=0.02)
        assert state["threshold"] == services.settings.alert_quality_drop == 0.1

        (fired,) = window(0.65, 100, 20)  # 0.25 below
        assert fired.state == "firing" and fired.value == pytest.approx(0.25, abs=0.02)
        (resolved,) = window(0.9, 200, 1)
        assert resolved.state == "ok" and resolved.value < 0.1

        events = alerts.history(services, "ads")
        kinds = [(e["kind"], e["detail"]["rule"]) for e in events]
        assert kinds == [
            ("alert_resolved", "estimated_quality"), ("alert_firing", "estimated_quality")
        ]  # fmt: skip
        detail = events[1]["detail"]
        assert detail["reference"] == 0.9 and detail["metric"] == "exact_match"
        assert detail["low"] < detail["estimate"] < detail["high"]


def test_the_quality_rule_waits_for_enough_calibrated_predictions(
    services: Services, ws_id: str
) -> None:
    add_version(services, ws_id, "v1", 1)
    add_version(services, ws_id, "v2", 2, trust=TRUST)
    deploy(services, ws_id, "captions", "v2")
    # 40 predictions, enough for the rules, but only 10 from the calibrated version.
    predictions(services, ws_id, "captions", "v1", [0.2] * 30, minutes_ago=40)
    predictions(services, ws_id, "captions", "v2", [0.2] * 10, start=30)
    alerts.evaluate(services)
    rules = {r["rule"] for r in alerts.current(services, "ads")}
    assert "estimated_quality" not in rules and "error_rate" in rules


def test_the_tui_shows_the_estimate_under_the_trends(services: Services, ws_id: str) -> None:
    from tui.screens.monitoring import _endpoint_block

    add_version(services, ws_id, "v2", 2, trust=TRUST)
    deploy(services, ws_id, "captions", "v2")
    ids = predictions(services, ws_id, "captions", "v2", [0.9] * 20 + [0.3] * 20)
    services.registry.write(
        lambda db: db.table("feedback").insert(
            {
                "prediction_id": ids[0],
                "rating": 5,
                "thumb": None,
                "comment": "",
                "created_at": utcnow(),
            }
        )
    )
    (captions,) = report.summary(services, "ads", "captions", 3600)["endpoints"]
    lines = _endpoint_block(captions, "captioner@v2", []).plain.splitlines()
    quality = next(line for line in lines if line.startswith("  quality"))
    low, high = captions["estimated_quality"]["low"], captions["estimated_quality"]["high"]
    assert "0.60" in quality and quality.endswith(f"[{low:.2f}-{high:.2f}] vs 0.90")
    note = lines[lines.index(quality) + 1].strip()
    assert note == "exact_match estimated · rated 1.00 (1) · 50.0% uncertain"
    assert max(len(line) for line in lines) <= 80  # the screen's width in the snapshots
