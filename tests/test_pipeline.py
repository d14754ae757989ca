"""Runs of a real (tiny) recipe in real child processes: lineage, crash, cancel, reaping, gate."""

import os
import signal
import time
from pathlib import Path

import pytest

from appliance.errors import InvalidInput
from appliance.models.promotion import GateRefused, promote
from appliance.recipes.catalog import copy_recipe
from appliance.recipes.spec import read_recipe
from appliance.runs.launcher import reap_runs, start_run
from appliance.services import Services

COLOUR = Path(__file__).parent / "recipes" / "colour"


@pytest.fixture
def ws(services: Services, tmp_path: Path) -> str:
    from appliance.datasets.synthetic import generate

    photos = generate(tmp_path / "more-photos", count=160, seed=4).path
    services.workspaces.create("ads")
    services.datasets.add("ads", "photos", photos)
    services.recipes.add("ads", COLOUR)
    return "ads"


def _wait_for_progress(services: Services, run_id: str) -> None:
    deadline = time.time() + 60
    while not services.runs.get(run_id)["progress"]:
        assert time.time() < deadline, "the run never reported progress"
        time.sleep(0.1)


def test_a_run_trains_evaluates_and_registers_with_lineage(services: Services, ws: str) -> None:
    launch = start_run(services, ws, "colour", "photos@1", {"steps": "3", "seed": "5"})
    run = launch.wait()
    assert run["status"] == "succeeded", run["error"]
    assert run["params"]["steps"] == 3 and run["seed"] == 5
    dataset = services.datasets.get(ws, "photos@1")
    assert run["dataset_digest"] == dataset["digest"]
    assert run["code_hash"] == read_recipe(COLOUR).code_hash()
    assert {"python", "torch", "transformers"} <= set(run["library_versions"])
    assert [p["step"] for p in services.runs.metrics(run["id"])["loss"]] == [1, 2, 3]
    version = services.models.by_run(run["id"])
    assert version is not None and version["name"] == "colour" and version["version"] == 1
    assert 0 < version["metrics"]["exact_match"] <= 1 and "train_seconds" in version["metrics"]
    assert version["dataset_digest"] == dataset["digest"]
    log = Path(run["log_path"]).read_text()
    assert "held out" in log and "registered colour@1" in log


def test_a_crash_leaves_the_run_failed_with_the_reason(services: Services, ws: str) -> None:
    run = start_run(services, ws, "colour", "photos", {"crash": "raise"}).wait()
    assert run["status"] == "failed"
    assert run["error"] == "RuntimeError: the colour recipe crashed on purpose"
    assert "Traceback" in Path(run["log_path"]).read_text()
    run = start_run(services, ws, "colour", "photos", {"crash": "exit"}).wait()
    assert run["status"] == "failed"
    assert run["error"] == "the training process exited with code 3 without reporting"
    assert services.models.by_run(run["id"]) is None


def test_cancel_and_ctrl_c(services: Services, ws: str) -> None:
    slow = {"steps": "200", "step_seconds": "0.2"}
    launch = start_run(services, ws, "colour", "photos", slow)
    _wait_for_progress(services, launch.run_id)
    cancelled = launch.cancel()
    assert cancelled["status"] == "cancelled" and cancelled["error"] == "cancelled by the user"
    assert Path(cancelled["log_path"]).read_text().rstrip().endswith("cancelled")

    launch = start_run(services, ws, "colour", "photos", slow)

    def press_ctrl_c(run: dict) -> None:
        if run["progress"]:
            raise KeyboardInterrupt

    run = launch.wait(press_ctrl_c, interval=0.1)
    assert run["status"] == "cancelled" and run["error"] == "cancelled by the user"


def test_a_killed_child_is_reaped(services: Services, ws: str) -> None:
    launch = start_run(services, ws, "colour", "photos", {"steps": "200", "step_seconds": "0.2"})
    _wait_for_progress(services, launch.run_id)
    os.kill(launch.process.pid, signal.SIGKILL)
    launch.process.wait()
    run = reap_runs(services, launch.run_id)
    assert run is not None and run["status"] == "failed"
    assert "ended without reporting" in run["error"]


def test_the_gate_refuses_a_worse_model(services: Services, ws: str) -> None:
    good = start_run(services, ws, "colour", "photos", {"rank": "0"}).wait()
    first = promote(services, ws, "colour@1", "production")
    assert first.current is None and services.models.get(ws, "colour@production")["version"] == 1
    worse = start_run(services, ws, "colour", "photos", {"rank": "99"}).wait()
    assert (good["status"], worse["status"]) == ("succeeded", "succeeded")
    with pytest.raises(GateRefused, match=r"colour@2 is worse than production \(colour@1\)"):
        promote(services, ws, "colour@2", "production")
    assert services.models.get(ws, "colour@production")["version"] == 1
    forced = promote(services, ws, "colour@2", "production", force=True)
    assert forced.candidate_value is not None and forced.current_value is not None
    assert forced.candidate_value < forced.current_value
    assert services.models.get(ws, "colour@production")["version"] == 2
    events = services.events.list(services.workspaces.get(ws)["id"])
    kinds = [e["kind"] for e in events if e["kind"].startswith("promot")]
    assert kinds == ["promoted", "promotion_refused", "promoted"]
    assert events[0]["detail"]["forced"] is True


def test_bad_params_are_refused_before_anything_runs(services: Services, ws: str) -> None:
    with pytest.raises(InvalidInput, match="has no param colour_depth"):
        start_run(services, ws, "colour", "photos", {"colour_depth": "3"})
    with pytest.raises(InvalidInput, match="param 'steps' must be int"):
        start_run(services, ws, "colour", "photos", {"steps": "many"})
    assert services.runs.list(ws) == []


def test_new_copies_a_recipe_under_a_new_name(tmp_path: Path) -> None:
    spec = copy_recipe(read_recipe(COLOUR), tmp_path / "my-colour")
    assert spec.name == "my-colour" and (tmp_path / "my-colour" / "colour.py").is_file()
    with pytest.raises(Exception, match="not empty"):
        copy_recipe(read_recipe(COLOUR), tmp_path / "my-colour")
