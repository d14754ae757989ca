"""`appliance model export --format mlflow`: the folder MLflow's own loader opens and predicts
with (mlflow-skinny is a test-only dependency), and clear refusals."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from click.testing import CliRunner

from appliance.cli import cli
from appliance.datasets.synthetic import generate
from appliance.runs.launcher import start_run
from appliance.services import Services

COLOUR = Path(__file__).parent / "recipes" / "colour"


@pytest.fixture
def trained(services: Services, tmp_path: Path) -> Path:
    services.workspaces.create("ads")
    photos = generate(tmp_path / "photos", count=30, seed=4).path
    services.datasets.add("ads", "photos", photos)
    services.recipes.add("ads", COLOUR)
    run = start_run(services, "ads", "colour", "photos", {}).wait()
    assert run["status"] == "succeeded", run["error"]
    return photos


def test_an_exported_version_loads_and_predicts_in_mlflow(trained: Path, tmp_path: Path) -> None:
    import mlflow

    out = tmp_path / "exported"
    result = CliRunner().invoke(cli, ["model", "export", "ads", "colour@1", str(out)])
    assert result.exit_code == 0, result.stderr
    assert "colour@1 →" in result.stdout and (out / "MLmodel").is_file()
    loaded = mlflow.pyfunc.load_model(str(out))
    assert loaded.metadata.metadata["appliance_model"] == "colour"
    photos = sorted(trained.glob("*.png"))[:3]
    raw = loaded.predict([p.read_bytes() for p in photos])
    encoded = loaded.predict({"image": [base64.b64encode(p.read_bytes()).decode() for p in photos]})
    assert raw == encoded and len(raw) == 3
    assert all(a["description"].endswith(" product") and 0 < a["confidence"] <= 1 for a in raw)


def test_export_refusals(trained: Path, tmp_path: Path) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    for args, message in (
        (["model", "export", "ads", "colour@1", str(busy)], "not empty"),
        (["model", "export", "ads", "colour@9", str(tmp_path / "a")], "no version or alias"),
        (["model", "export", "ads", "colour@1", str(tmp_path / "b"), "--format", "onnx"], "onnx"),
    ):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code != 0 and message in result.stderr, result.stderr
    assert (busy / "keep.txt").read_text() == "mine"
