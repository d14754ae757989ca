"""Upgrading a home the previous release made (tests/fixtures/home-a33912e, written by that
release's own code: see make_home.py there): every capture keeps its values, now as task-neutral
JSON, every feedback row stays attached, and monitoring reads the upgraded rows."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from appliance.services import Services

FIXTURE = Path(__file__).parent / "fixtures" / "home-a33912e"
FEATURES = ("width", "height", "brightness", "brightness_p99", "contrast", "sharpness")


def test_captures_and_feedback_survive_the_task_neutral_predictions_table(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(FIXTURE / "registry.db", home / "registry.db")
    with sqlite3.connect(home / "registry.db") as old:
        old.row_factory = sqlite3.Row
        before = {
            row["id"]: {k: row[k] for k in FEATURES if row[k] is not None}
            for row in old.execute("SELECT * FROM predictions")
        }
    assert before["p-bright"]["brightness"] == 204.0  # the fixture is the old layout
    with Services.open(home=home) as services:
        columns = {c.name for c in services.registry.db.table("predictions").columns}
        assert {"features", "output"} <= columns and not {"width", "brightness"} & columns
        rows = {r["id"]: r for r in services.predictions.recent("ads", limit=10)}
        assert set(rows) == {"p-bright", "p-dark", "p-failed"}
        bright, dark, failed = rows["p-bright"], rows["p-dark"], rows["p-failed"]
        for pid, row in rows.items():  # the very values the old columns held
            assert row["features"] == before[pid], pid
        assert bright["features"]["width"] == 64.0 and bright["features"]["height"] == 48.0
        assert bright["output"] == {"description": "red striped mug on a white background"}
        assert bright["description"] == "red striped mug on a white background"
        assert bright["confidence"] == 0.97 and bright["rating"] == 5
        assert dark["keywords"] == "vintage" and dark["warnings"] == ["low_light"]
        assert dark["features"]["brightness"] < 30 and dark["rating"] == 2
        assert failed["output"] is None and failed["error"] == "RuntimeError: broken"
        feedback = services.registry.query("SELECT prediction_id, comment FROM feedback")
        assert sorted((f["prediction_id"], f["comment"]) for f in feedback) == [
            ("p-bright", "spot on"), ("p-dark", "it is a cap"),
        ]  # fmt: skip
        assert services.predictions.get("p-dark")["features"] == dark["features"]
