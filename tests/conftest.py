"""Shared fixtures: every test gets its own home under tmp_path (never the user's), real SQLite,
real files, and real tiny models built here."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.services import Services


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point APPLIANCE_HOME at tmp_path so no test can touch the user's data folder."""
    home = tmp_path / "home"
    monkeypatch.setenv("APPLIANCE_HOME", str(home))
    for name in ("HOST", "PORT", "TOKEN", "MAX_BODY_BYTES", "BUSY_TIMEOUT_MS"):
        monkeypatch.delenv(f"APPLIANCE_{name}", raising=False)
    return home


@pytest.fixture
def services(isolated_home: Path) -> Iterator[Services]:
    with Services.open(home=isolated_home) as opened:
        yield opened


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """A small generated imagefolder."""
    from appliance.datasets.synthetic import generate

    return generate(tmp_path / "photos", count=24, seed=3, low_light_fraction=0.25).path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real Hugging Face model folder that serves: a 1-layer BERT text classifier with its
    tokenizer, saved as safetensors (appliance.testing.hf_folders)."""
    from appliance.testing.hf_folders import build

    return build("bert-cls", tmp_path_factory.mktemp("tiny-model") / "bert-cls")


def write_metadata(folder: Path, rows: list[dict] | list[str]) -> None:
    """Write metadata.jsonl from dicts, or raw lines when given strings."""
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n")


COLOUR = Path(__file__).parent / "recipes" / "colour"


@pytest.fixture
def deployed(isolated_home: Path, tmp_path: Path) -> Path:
    """colour@1 trained and deployed as `captions` in workspace `ads` (no server yet)."""
    from click.testing import CliRunner

    from appliance.cli import cli
    from appliance.datasets.synthetic import generate
    from appliance.runs.launcher import start_run

    with Services.open(home=isolated_home) as services:
        services.workspaces.create("ads")
        services.datasets.add("ads", "photos", generate(tmp_path / "p", count=40, seed=1).path)
        services.recipes.add("ads", COLOUR)
        run = start_run(services, "ads", "colour", "photos", {"rank": 0}).wait()
        assert run["status"] == "succeeded"
    result = CliRunner().invoke(cli, ["deploy", "ads", "captions", "colour@1"])
    assert result.exit_code == 0, result.stderr
    return isolated_home
