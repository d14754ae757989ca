"""Embedding drift end to end: the capture thread stores each answer's embedding as one float16
row (and a bad one as nothing, never failing the capture); the drift report tests the newest
captured embeddings of the deployed version against its reference embeddings (kernel MMD); the
`embedding_drift` rule fires for a window from a cluster the training data never had, not for
one drawn like the training data, and resolves when such traffic is back. Real registry, real
capture thread, real numbers."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
from click.testing import CliRunner
from test_quality_estimate import TRUST, add_version, deploy, predictions

from appliance.cli import cli
from appliance.monitoring import alerts, report
from appliance.monitoring.capture import MAX_EMBEDDING_DIMS, Capture
from appliance.monitoring.embeddings import MIN_LIVE, from_blob
from appliance.registry import utcnow
from appliance.server.monitoring import Drift, Summary
from appliance.services import Services
from appliance.serving.observer import CaptureRecord

DIMS = 32
CENTRES = np.random.default_rng(0).normal(size=(4, DIMS)) * 2


def drawn(count: int, seed: int, centres: np.ndarray = CENTRES) -> np.ndarray:
    """`count` embeddings around the given centres (the training data's, by default)."""
    rng = np.random.default_rng(seed)
    return centres[rng.integers(len(centres), size=count)] + rng.normal(size=(count, DIMS))


def record(i: int, embedding: Any, version_id: str = "v1") -> CaptureRecord:
    return CaptureRecord(
        id=f"e{i:05d}", workspace="ads", endpoint="captions", model_version_id=version_id,
        created_at=utcnow(), latency_ms=3.0, description="a red mug", confidence=0.9,
        embedding=embedding,
    )  # fmt: skip


def capture(services: Services, embeddings: Any, start: int = 0) -> None:
    """Each embedding through the real capture thread, as serving hands them over."""
    writer = Capture(services.registry, services.settings)
    for i, embedding in enumerate(embeddings):
        writer.record(record(start + i, embedding))
    writer.flush()
    writer.close()
    assert writer.dropped == 0


@pytest.fixture
def deployed(services: Services) -> Services:
    """`captions` serves v1, calibrated, with 400 reference embeddings of the training data."""
    ws_id = str(services.workspaces.create("ads")["id"])
    add_version(services, ws_id, "v1", 1, trust=TRUST, reference=drawn(400, seed=1))
    deploy(services, ws_id, "captions", "v1")
    return services


def test_capture_stores_one_float16_row_and_skips_a_bad_embedding(
    deployed: Services, caplog: pytest.LogCaptureFixture
) -> None:
    good = [0.5, -1.25, 3.0]
    bad = [
        [float("nan"), 1.0],  # not finite
        [0.0] * (MAX_EMBEDDING_DIMS + 1),  # too wide
        [1e6, 0.0],  # beyond float16
        [[1.0, 2.0], [3.0, 4.0]],  # not flat
        ["a", "b"],  # not numbers
        [],
    ]
    capture(deployed, [good, None, *bad])
    rows = deployed.registry.query("SELECT id, embedding FROM predictions ORDER BY id")
    assert len(rows) == 2 + len(bad)  # every prediction captured
    assert from_blob(rows[0]["embedding"], 3).tolist() == [good]
    assert all(r["embedding"] is None for r in rows[1:])
    # Logged once for the version, not once per prediction.
    warned = [r for r in caplog.records if "embedding not stored" in r.getMessage()]
    assert len([r for r in warned if r.levelname == "WARNING"]) == 1
    # The window of traffic and a captured prediction never carry the blob.
    (listed, *_) = deployed.predictions.window("ads", "captions")
    assert "embedding" not in listed and "thumbnail" not in listed
    assert "embedding" not in deployed.predictions.get("e00000")


def test_the_embedding_test_runs_on_the_newest_captured_embeddings(deployed: Services) -> None:
    since = "2000-01-01"
    assert report.embedding_drift(deployed, "ads", "captions", "v1", since) is None  # no traffic
    capture(deployed, drawn(MIN_LIVE - 1, seed=2).tolist())
    assert report.embedding_drift(deployed, "ads", "captions", "v1", since) is None  # too few
    capture(deployed, drawn(200, seed=3).tolist(), start=100)
    same = report.embedding_drift(deployed, "ads", "captions", "v1", since)
    assert same is not None
    assert same["method"] == "mmd" and same["reference"] == 400 and same["live"] == 229
    assert same["p_value"] >= 0.01 and same["drifted"] is False

    capture(deployed, drawn(600, seed=4, centres=CENTRES[:1] + 3).tolist(), start=1000)
    shifted = report.embedding_drift(deployed, "ads", "captions", "v1", since)
    assert shifted is not None
    assert shifted["live"] == report.LIVE_EMBEDDINGS  # the newest 500, all shifted
    assert shifted["drifted"] is True and shifted["p_value"] < 0.01
    assert shifted["statistic"] > same["statistic"]

    # The drift report carries it, and the HTTP answer declares every field.
    found = report.drift(deployed, "ads", "captions", 3600)
    assert found["embedding"] == shifted
    msgspec.convert(found, Drift)
    assert report.drift(deployed, "ads", "captions", 3600, embeddings=False)["embedding"] is None
    msgspec.convert(report.summary(deployed, "ads", "captions", 3600), Summary)

    result = CliRunner().invoke(cli, ["monitor", "drift", "ads", "captions"])
    assert result.exit_code == 0, result.stderr
    assert (
        f"embeddings   mmd p={shifted['p_value']:.3g} (statistic {shifted['statistic']:.3g}),"
        " 500 recent vs 400 training embeddings: DRIFT"
    ) in result.stdout


def test_a_version_without_reference_embeddings_has_no_test(services: Services) -> None:
    ws_id = str(services.workspaces.create("ads")["id"])
    add_version(services, ws_id, "v1", 1, trust=TRUST)  # calibrated, no embeddings
    deploy(services, ws_id, "captions", "v1")
    capture(services, drawn(50, seed=2).tolist())
    assert report.drift(services, "ads", "captions", 3600)["embedding"] is None
    result = CliRunner().invoke(cli, ["monitor", "drift", "ads", "captions"])
    assert "embeddings   not compared" in result.stdout


def test_the_embedding_rule_fires_for_a_shifted_cluster_and_resolves(deployed: Services) -> None:
    def rule() -> dict[str, Any]:
        alerts.evaluate(deployed)
        return {r["rule"]: r for r in alerts.current(deployed, "ads")}["embedding_drift"]

    capture(deployed, drawn(100, seed=5).tolist())  # like the training data
    state = rule()
    assert state["state"] == "ok" and state["value"] >= 0.01
    assert state["threshold"] == deployed.settings.embedding_drift_alpha == 0.01

    capture(deployed, drawn(500, seed=6, centres=CENTRES[:1] + 3).tolist(), start=100)
    state = rule()
    assert state["state"] == "firing" and state["value"] < 0.01
    capture(deployed, drawn(500, seed=7).tolist(), start=600)  # the newest 500 are fine again
    assert rule()["state"] == "ok"

    events = [
        e for e in alerts.history(deployed, "ads") if e["detail"]["rule"] == "embedding_drift"
    ]
    assert [e["kind"] for e in events] == ["alert_resolved", "alert_firing"]
    fired = events[1]["detail"]
    assert fired["value"] < fired["threshold"] == 0.01
    assert fired["method"] == "mmd" and fired["live_rows"] == 500 and fired["reference_rows"] == 400


def test_the_embedding_test_of_500_live_against_1000_reference_takes_under_a_second(
    isolated_home: Path,
) -> None:
    """The monitor runs it every round per endpoint: 1000-dim embeddings, the sizes capped."""
    with Services.open(home=isolated_home) as services:
        ws_id = str(services.workspaces.create("ads")["id"])
        rng = np.random.default_rng(8)
        add_version(services, ws_id, "v1", 1, trust=TRUST, reference=rng.normal(size=(1000, 1000)))
        deploy(services, ws_id, "captions", "v1")
        capture(services, rng.normal(size=(600, 1000)).tolist())
        predictions(services, ws_id, "captions", "v1", [0.9] * 10, start=10_000)  # no embedding
        timings = []
        for _ in range(3):
            started = time.perf_counter()
            test = report.embedding_drift(services, "ads", "captions", "v1", "2000-01-01")
            timings.append(time.perf_counter() - started)
        print(f"embedding test, 500 x 1000 dims against 1000: {timings} s")
        assert test is not None and test["live"] == 500 and test["reference"] == 1000
        assert test["drifted"] is False
        assert min(timings) < 1.0
