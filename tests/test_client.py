from pathlib import Path

import pytest

import appliance
from appliance.errors import Conflict, NotFound


def test_run_lifecycle_like_mlflow(isolated_home: Path, photos: Path, tmp_path: Path) -> None:
    with appliance.connect(home=str(isolated_home)) as client:
        ws = client.workspace("classified-ads")
        ws.add_dataset("photos", photos)
        with ws.start_run(recipe="notebook", params={"lr": 0.001}, dataset="photos", seed=7) as run:
            run.log_params({"epochs": 3, "model": {"width": 64}})
            for step in range(3):
                run.log_metric("loss", 1.0 / (step + 1), step=step)
            run.log_metrics({"exact_match": 0.91, "bleu": 80.5}, step=3)
            (tmp_path / "notes.txt").write_text("hello")
            assert run.log_artifact(tmp_path / "notes.txt") == ["notes.txt"]
            assert run.log_artifact(photos, name="inputs")[0].startswith("inputs/")
        info = run.info
        assert info["status"] == "succeeded" and info["ended_at"]
        assert info["params"] == {"lr": 0.001, "epochs": 3, "model": "{'width': 64}"}
        assert info["seed"] == 7 and info["dataset_digest"]
        metrics = client.services.runs.metrics(run.id)
        assert [p["value"] for p in metrics["loss"]] == [1.0, 0.5, 1.0 / 3]
        assert client.services.runs.latest_metrics(run.id)["exact_match"] == 0.91
        assert [r["id"] for r in ws.runs()] == [run.id]


def test_failed_and_interrupted_runs(isolated_home: Path) -> None:
    with appliance.connect(home=str(isolated_home)) as client:
        ws = client.workspace("ws")
        with pytest.raises(ValueError), ws.start_run() as failing:
            raise ValueError("diverged")
        assert failing.info["status"] == "failed"
        assert failing.info["error"] == "ValueError: diverged"
        with pytest.raises(KeyboardInterrupt), ws.start_run() as interrupted:
            raise KeyboardInterrupt
        assert interrupted.info["status"] == "cancelled"


def test_params_cannot_change_and_names_resolve(isolated_home: Path, tiny_model: Path) -> None:
    with appliance.connect(home=str(isolated_home)) as client:
        ws = client.workspace("ws")
        run = ws.start_run(params={"lr": 0.1})
        with pytest.raises(Conflict, match="params cannot change"):
            run.log_param("lr", 0.2)
        run.log_param("lr", 0.1)  # the same value again is fine
        run.log_metric("exact_match", 0.8)
        version = run.register_model(tiny_model, "lm")
        run.end()
        assert version.metrics == {"exact_match": 0.8}  # taken from the run by default
        assert [v.version for v in ws.model_versions("lm")] == [1]
        with pytest.raises(NotFound):
            client.workspace("missing", create=False)
        assert [w.name for w in client.workspaces()] == ["ws"]
