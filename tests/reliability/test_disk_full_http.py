"""A full disk over HTTP, told truthfully: a nearly full disk pauses capture (counted, logged)
while predictions are still answered, feedback on an uncaptured answer says it was not captured,
the disk alert fires, and a write that finds no byte left is 507 with what to do; once there is
room, everything works again and the registry is intact."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from crash_harness import integrity, small_tmpfs
from serving_harness import running_server, wait_ready
from test_disk_full import fill

from appliance.datasets.synthetic import generate
from appliance.monitoring import alerts
from appliance.runs.launcher import start_run
from appliance.services import Services
from appliance.serving.options import DeployOptions
from appliance.serving.service import Serving

COLOUR = Path(__file__).parents[1] / "recipes" / "colour"
MB = 1 << 20
PREDICT = "/v1/endpoints/captions/predict"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A fresh 48 MB tmpfs, mounted for this test only."""
    with small_tmpfs(tmp_path, 48) as disk:
        yield disk


def photo(client: httpx.Client, png: bytes) -> dict[str, str]:
    answer = client.post(PREDICT, content=png, headers={"content-type": "image/png"})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_full_disk_over_http(small_disk: Path, tmp_path: Path) -> None:
    home = small_disk / "home"
    photos = generate(tmp_path / "photos", count=40, seed=5).path
    png = next(photos.glob("*.png")).read_bytes()
    limits = {"capture_min_free_mb": 6, "alert_min_free_disk_mb": 8, "drift_min_samples": 1000}
    with Services.open(home=home, **limits) as services:
        services.workspaces.create("ads")
        services.datasets.add("ads", "photos", photos)
        services.recipes.add("ads", COLOUR)
        run = start_run(services, "ads", "colour", "photos", {"rank": "0"}).wait()
        assert run["status"] == "succeeded", run["error"]
        Serving(services).deploy("ads", "captions", "colour@1", DeployOptions())

        with running_server(services) as client:
            wait_ready(client)
            kept = photo(client, png)["id"]
            assert client.get(f"/v1/predictions/{kept}").status_code == 200  # captured

            # Nearly full: answers keep coming, their captures pause, feedback says why.
            filler = fill(small_disk, leave=4 * MB)
            lost = photo(client, png)["id"]
            refused = client.post(f"/v1/predictions/{lost}/feedback", json={"rating": 4})
            assert refused.status_code == 404
            assert refused.json()["error"].startswith(
                f"prediction {lost} was answered but not captured (capture was paused: the disk "
                "holding the home had"
            )
            scraped = client.get("/metrics").text
            assert "appliance_captures_paused_total 1.0" in scraped
            assert (
                client.post(f"/v1/predictions/{kept}/feedback", json={"rating": 5}).status_code
                == 201
            )
            firing = [t for t in alerts.evaluate(services) if t.rule == "disk_free_mb"]
            assert [(t.state, t.threshold) for t in firing] == [("firing", 8)]

            # Not a byte left: every write is 507 with what to do, and nothing is half-stored.
            filler.unlink()
            filler = fill(small_disk, leave=0)
            answers = [
                client.post(f"/v1/predictions/{kept}/feedback", json={"rating": 3}),
                client.post("/v1/workspaces/ads/jobs", json={"name": "tidy", "kind": "housekeeping",
                                                             "trigger": "every 1h"}),
            ]  # fmt: skip
            for answer in answers:
                assert answer.status_code == 507, answer.text
                assert answer.json()["error"].startswith("no space left on the disk holding")
                assert "Traceback" not in answer.text

            filler.unlink()
            assert photo(client, png)["id"]
            again = client.post(f"/v1/predictions/{kept}/feedback", json={"rating": 3})
            assert again.status_code == 201, again.text
            resolved = [t for t in alerts.evaluate(services) if t.rule == "disk_free_mb"]
            assert [t.state for t in resolved] == ["ok"]
        ratings = services.registry.query("SELECT rating FROM feedback ORDER BY created_at")
        assert [r["rating"] for r in ratings] == [5, 3]
        assert services.jobs.list() == []
    assert integrity(home / "registry.db") == "ok"
