"""`appliance monitor …` against a real registry: predictions, feedback, events and alert states
are written as rows (as capture, the feedback endpoint and deploys would write them), so the
reports can be checked against figures computed here by hand, without training a model."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlite_utils
from click.testing import CliRunner

from appliance.cli import cli
from appliance.events import record_event
from appliance.registry import utcnow
from appliance.services import Services


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def _ago(**delta: float) -> str:
    """A registry timestamp `delta` before now."""
    return (datetime.now(UTC) - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _insert(services: Services, table: str, rows: list[dict[str, Any]]) -> None:
    services.registry.write(lambda db: db.table(table).insert_all(rows))


FEATURES = ("width", "height", "brightness", "brightness_p99", "contrast", "sharpness")


def _prediction(ws_id: str, pid: str, endpoint: str, created_at: str, **values: Any) -> dict:
    """A capture row; feature keywords (brightness=...) go into its features object."""
    features = {k: values.pop(k) for k in FEATURES if values.get(k) is not None}
    for name in FEATURES:
        values.pop(name, None)
    row = {
        "id": pid, "workspace_id": ws_id, "endpoint": endpoint, "model_version_id": None,
        "created_at": created_at, "latency_ms": None, "queue_ms": 1.0, "inference_ms": 2.0,
        "batch_size": 1, "features": json.dumps(features), "description": "a cat",
        "confidence": None, "warnings": "[]", "error": None,
    }  # fmt: skip
    return {**row, **values}


@pytest.fixture
def ws_id(services: Services) -> str:
    return str(services.workspaces.create("ads")["id"])


def _deploy(services: Services, ws_id: str, *endpoints: str) -> None:
    """A model version with a stored reference profile (brightness 0.2..0.8, sharpness 10..70),
    served at `endpoints`."""
    now = utcnow()
    profile = {
        "dataset": "photos@1",
        "images": 61,
        "features": {
            "brightness": [round(0.2 + i / 100, 2) for i in range(61)],
            "sharpness": [float(10 + i) for i in range(61)],
        },
        "words": {"a": 0.5, "cat": 0.5},
    }

    def write(db: sqlite_utils.Database) -> None:
        if not db.execute("SELECT 1 FROM models WHERE id = 'm1'").fetchone():
            db.table("models").insert(
                {"id": "m1", "workspace_id": ws_id, "name": "captioner", "created_at": now}
            )
            db.table("model_versions").insert(
                {"id": "v1", "model_id": "m1", "version": 1, "path": "models/v1",
                 "digest": "d1", "size": 1, "created_at": now}
            )  # fmt: skip
            db.table("reference_profiles").insert(
                {"model_version_id": "v1", "profile": json.dumps(profile), "created_at": now}
            )
        for endpoint in endpoints:
            db.table("deployments").insert(
                {"id": f"d-{endpoint}", "workspace_id": ws_id, "endpoint": endpoint,
                 "model_version_id": "v1", "created_at": now, "updated_at": now}
            )  # fmt: skip

    services.registry.write(write)


def _traffic(services: Services, ws_id: str) -> None:
    """20 answered predictions on `captions` over the last hour (latency 5, 10, … 100 ms;
    confidence 0.50 … 0.88; every fourth one low_light), one failed, and one 20 days old."""
    rows = [
        _prediction(
            ws_id, f"p{i}", "captions", _ago(minutes=57 - 3 * i),
            latency_ms=5.0 * (i + 1), confidence=round(0.5 + 0.02 * i, 2),
            warnings='["low_light"]' if i % 4 == 0 else "[]",
        )
        for i in range(20)
    ]  # fmt: skip
    rows.append(_prediction(ws_id, "failed", "captions", _ago(minutes=1), error="boom"))
    rows.append(
        _prediction(ws_id, "old", "captions", _ago(days=20), latency_ms=999.0, confidence=0.5)
    )
    _insert(services, "predictions", rows)
    feedback = [
        ("p0", 5, "up", ""), ("p1", 4, None, ""), ("p2", 3, None, "too vague"),
        ("p3", None, "down", "wrong animal"), ("p4", 5, None, ""),
    ]  # fmt: skip
    _insert(
        services, "feedback",
        [{"prediction_id": p, "rating": r, "thumb": t, "comment": c, "created_at": utcnow()}
         for p, r, t, c in feedback]
        + [{"prediction_id": "old", "rating": 1, "thumb": None, "comment": "",
            "created_at": _ago(days=10)}],
    )  # fmt: skip


def test_help_lists_the_subcommands() -> None:
    code, out, _ = invoke("monitor", "--help")
    assert code == 0
    assert "Watch what deployed models see and answer" in out
    for name in ("summary", "drift", "feedback", "dora", "alerts"):
        assert f"  {name} " in out


def test_summary_figures_and_trends(services: Services, ws_id: str) -> None:
    _traffic(services, ws_id)
    _deploy(services, ws_id, "idle")
    code, out, err = invoke("monitor", "summary", "ads")
    assert code == 0, err
    print(out)  # the sample in the report: `pytest -s -k summary_figures`
    # 21 in the window (the 20-day-old one is not), 1 failed: 1/21 = 4.8%
    assert "predictions  21 (1 error, 4.8%)" in out
    # nearest rank over the 20 answered latencies 5..100: p50 = 10th, p95 = 19th, p99 = 20th
    assert "p50 50 ms  p95 95 ms  p99 100 ms" in out
    assert "confidence   0.69 mean" in out  # mean of 0.50, 0.52, … 0.88
    assert "low light    25.0%" in out  # 5 of 20 answered
    assert "ratings      4, mean 4.25" in out  # 5, 4, 3, 5 (the thumb-only one has no rating)
    assert "idle\n  no traffic in the last 1h" in out
    trends = {line.split()[0]: line for line in out.splitlines() if line.startswith("    ")}
    assert set(trends) == {"count", "p95", "confidence", "low", "rating"}
    assert trends["p95"].endswith("  5..100 ms")  # the first bucket holds only the 5 ms one
    assert trends["low"].rstrip().endswith("%")
    assert any(block in trends["count"] for block in "▁▂▃▄▅▆▇█")

    code, out, _ = invoke("monitor", "summary", "ads", "--endpoint", "captions", "--json")
    assert code == 0
    data = json.loads(out)
    (captions,) = data["endpoints"]
    assert captions["latency_ms"] == {"p50": 50.0, "p95": 95.0, "p99": 100.0}
    assert captions["predictions"] == 21 and captions["mean_rating"] == 4.25
    assert len(captions["trend"]["count"]) == 12 and sum(captions["trend"]["count"]) == 21

    code, out, err = invoke("monitor", "summary", "ads", "--window", "30d", "--json")
    assert code == 0, err
    assert json.loads(out)["endpoints"][0]["predictions"] == 22  # the old one is back


def test_bad_window_and_unknown_names_are_errors(services: Services, ws_id: str) -> None:
    for args in (
        ("summary", "ads", "--window", "soon"),
        ("drift", "ads", "captions", "--window", "-1h"),
        ("feedback", "ads", "--since", "lately"),
        ("dora", "ads", "--since", "0d"),
    ):
        code, out, err = invoke("monitor", *args)
        assert code == 1 and out == ""
        assert err.startswith("error: window '") and "is not a duration" in err
        assert len(err.splitlines()) == 1
    code, _, err = invoke("monitor", "summary", "nope")
    assert code == 1 and err.startswith("error: ") and "nope" in err
    code, _, err = invoke("monitor", "summary", "ads", "--endpoint", "nowhere")
    assert code == 1 and err.startswith("error: no endpoint 'nowhere'")
    code, _, err = invoke("monitor", "drift", "ads", "nowhere")
    assert code == 1 and err.startswith("error: ") and "no deployment" in err


def test_drift_table_and_fail_on_drift(services: Services, ws_id: str) -> None:
    _deploy(services, ws_id, "tagger", "dark")
    rows = [
        _prediction(
            ws_id, f"t{i}", "tagger", _ago(minutes=40 - i), latency_ms=10.0, confidence=0.9,
            brightness=round(0.2 + 0.6 * i / 39, 4), sharpness=20.0 if i < 5 else None,
            description="a zebra" if i == 0 else "a cat",
        )
        for i in range(40)
    ] + [
        _prediction(
            ws_id, f"k{i}", "dark", _ago(minutes=40 - i), latency_ms=10.0, confidence=0.4,
            brightness=round(0.02 + 0.001 * i, 4), warnings='["low_light"]',
        )
        for i in range(40)
    ]  # fmt: skip
    _insert(services, "predictions", rows)

    code, out, err = invoke("monitor", "drift", "ads", "tagger", "--fail-on-drift")
    assert code == 0, err  # nothing drifted: the flag changes nothing
    assert "ads/tagger serves captioner@1" in out
    assert "reference    photos@1" in out
    assert "compared     40 predictions of the last 1h (a feature needs 30 to be judged)" in out
    table = {line.split()[0]: line for line in out.splitlines() if line[:1].islower()}
    assert table["brightness"].endswith(" ok") and " 0.5 " in table["brightness"]
    assert table["sharpness"].endswith(" too few")  # 5 values < 30
    assert "drifted:" not in out
    assert "new words    zebra" in out
    code, out, _ = invoke("monitor", "drift", "ads", "tagger", "--json")
    data = json.loads(out)
    assert data["drifted"] == [] and {f["feature"] for f in data["features"]} == {
        "brightness", "sharpness",
    }  # fmt: skip

    code, out, _ = invoke("monitor", "drift", "ads", "dark")
    assert code == 0  # a report: drift alone is not a failure
    assert "DRIFT" in out and "drifted: brightness" in out
    assert "low light    " in out and "100..100%" in out
    code, out, _ = invoke("monitor", "drift", "ads", "dark", "--fail-on-drift", "--json")
    assert code == 3 and json.loads(out)["drifted"] == ["brightness"]


def test_feedback_summary_histogram_and_rows(services: Services, ws_id: str) -> None:
    _traffic(services, ws_id)
    code, out, err = invoke("monitor", "feedback", "ads")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "ads · last 7d: 5 feedback, mean rating 4.25, thumbs 1 up / 1 down"
    histogram = {line.split()[0]: line for line in lines[1:6]}
    assert histogram["1"].endswith(" 0") and histogram["3"].endswith(" 1")
    assert histogram["5"].endswith("█" * 20 + " 2")  # the tallest bar is full width
    assert histogram["4"].endswith("█" * 10 + " " * 11 + "1")
    assert "too vague" in out and "wrong animal" in out and "captions" in out

    code, out, _ = invoke("monitor", "feedback", "ads", "--since", "2w", "--limit", "2", "--json")
    data = json.loads(out)
    assert data["summary"]["count"] == 6 and data["summary"]["histogram"]["1"] == 1
    assert len(data["feedback"]) == 2
    code, out, _ = invoke("monitor", "feedback", "ads", "--endpoint", "other")
    assert code == 0 and out.startswith("ads on other · last 7d: 0 feedback, mean rating –")


def test_dora_figures(services: Services, ws_id: str) -> None:
    events = [
        ("deployed", "v-0", _ago(days=40), "old"),  # outside the default 30 days
        ("deployed", "v-a", _ago(days=10), "ann"),
        ("deployed", "v-b", _ago(days=5), "bob"),
        ("rolled_back", "v-a", _ago(days=5, hours=-2), "ann"),  # v-b failed, restored 2 h later
    ]
    _insert(
        services, "events",
        [{"workspace_id": ws_id, "kind": k, "subject": "captions", "model_version_id": v,
          "detail": "{}", "created_at": at, "actor": who} for k, v, at, who in events],
    )  # fmt: skip
    code, out, err = invoke("monitor", "dora", "ads")
    assert code == 0, err
    assert "deployment frequency   0.1 per day (3 deployments, rollbacks included)" in out
    assert "lead time for changes  –" in out  # no run or dataset behind these versions
    assert "change failure rate    50.0% (1 failure)" in out
    assert "time to restore        2 h" in out
    assert "level                  medium" in out  # 3 in 30 days: between monthly and weekly
    assert "by                     ann 2 deployments · bob 1 deployment\n" in out
    code, out, _ = invoke("monitor", "dora", "ads", "--since", "60d", "--json")
    data = json.loads(out)
    assert data["deployments"] == 4 and data["lead_time_hours"] is None
    assert list(data["authors"]) == ["ann", "bob", "old"]
    assert [c["actor"] for c in data["changes"]] == ["ann", "bob", "ann", "old"]  # newest first


def test_alerts_states_and_history(services: Services, ws_id: str) -> None:
    now = utcnow()

    def write(db: sqlite_utils.Database) -> None:
        db.table("alerts").insert_all(
            [
                {"workspace_id": ws_id, "endpoint": "captions", "rule": "p95_latency_ms",
                 "state": "firing", "value": 250.0, "threshold": 200.0, "since": now,
                 "updated_at": now},
                {"workspace_id": ws_id, "endpoint": "captions", "rule": "error_rate",
                 "state": "ok", "value": 0.01, "threshold": 0.05, "since": now,
                 "updated_at": now},
            ]
        )  # fmt: skip
        record_event(
            db, ws_id, "alert_firing", "captions", rule="p95_latency_ms",
            description="p95 latency above the limit", value=250.0, threshold=200.0,
        )  # fmt: skip

    code, out, _ = invoke("monitor", "alerts", "ads")
    assert code == 0 and out == "no alert rule evaluated yet\n"
    services.registry.write(write)
    code, out, err = invoke("monitor", "alerts", "ads")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["ENDPOINT", "RULE", "STATE", "VALUE", "THRESHOLD", "SINCE"]
    assert lines[1].split()[:5] == ["captions", "error_rate", "ok", "0.01", "0.05"]
    assert lines[2].split()[:5] == ["captions", "p95_latency_ms", "FIRING", "250", "200"]
    assert "recent alert events" not in out

    code, out, _ = invoke("monitor", "alerts", "ads", "--firing", "--history")
    assert code == 0
    assert "error_rate" not in out
    history = out.split("recent alert events, newest first:\n")[1].splitlines()
    assert history[0].split() == ["TIME", "EVENT", "ENDPOINT", "RULE", "VALUE", "THRESHOLD"]
    assert history[1].split()[2:] == ["firing", "captions", "p95_latency_ms", "250", "200"]

    code, out, _ = invoke("monitor", "alerts", "ads", "--history", "--json")
    data = json.loads(out)
    assert [a["rule"] for a in data["alerts"]] == ["error_rate", "p95_latency_ms"]
    assert data["history"][0]["kind"] == "alert_firing"
