"""`appliance run|recipe|model promote|new` as a user types them, with the tiny colour recipe."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from appliance.cli import cli

COLOUR = Path(__file__).parent / "recipes" / "colour"


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def ws(tmp_path: Path) -> str:
    from appliance.datasets.synthetic import generate

    photos = generate(tmp_path / "photos", count=160, seed=4).path
    assert invoke("workspace", "create", "ads")[0] == 0
    assert invoke("dataset", "add", "ads", "photos", str(photos))[0] == 0
    assert invoke("recipe", "add", "ads", str(COLOUR))[0] == 0
    return "ads"


def test_start_shows_the_result_and_the_gate_guards_production(ws: str) -> None:
    code, out, err = invoke("run", "start", ws, "--recipe", "colour", "--dataset", "photos@1")
    assert code == 0, err
    assert "succeeded: registered colour@1" in out and "exact_match" in out
    run_id = out.split()[1]
    code, out, _ = invoke("run", "logs", run_id, "--tail", "2")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 2 and "registered colour@1" in lines[0]
    assert "reference profile for drift: 160 images" in lines[1]
    code, out, _ = invoke("run", "show", run_id, "--json")
    assert json.loads(out)["status"] == "succeeded"
    code, out, _ = invoke("model", "promote", ws, "colour", "1")
    assert code == 0 and out.startswith("colour@production → version 1")
    invoke("run", "start", ws, "--recipe", "colour", "--dataset", "photos", "--param", "rank=99")
    code, _, err = invoke("model", "promote", ws, "colour", "2")
    assert code == 1 and "colour@2 is worse than production (colour@1): exact_match" in err
    assert "pass --force" in err
    code, out, _ = invoke("model", "promote", ws, "colour", "2", "--force")
    assert code == 0 and "version 2" in out


def test_a_failed_run_is_an_error_line(ws: str) -> None:
    args = ("run", "start", ws, "--recipe", "colour", "--dataset", "photos")
    code, _, err = invoke(*args, "--param", "crash=raise")
    assert code == 1
    assert "failed: RuntimeError: the colour recipe crashed on purpose" in err
    code, _, err = invoke(*args, "--param", "nope=1")
    assert code == 1 and "has no param nope" in err
    code, _, err = invoke(*args, "--param", "steps")
    assert code == 1 and "must look like name=value" in err
    code, _, err = invoke("run", "start", ws, "--recipe", "missing", "--dataset", "photos")
    assert code == 1 and "no recipe 'missing'" in err and "colour" in err


def test_detach_then_cancel(ws: str) -> None:
    code, out, _ = invoke(
        "run", "start", ws, "--recipe", "colour", "--dataset", "photos", "--detach", "--json",
        "--param", "steps=300", "--param", "step_seconds=0.2",
    )  # fmt: skip
    assert code == 0
    run_id = json.loads(out)["id"]
    code, out, _ = invoke("run", "cancel", run_id)
    assert code == 0 and out.strip() == f"run {run_id} cancelled"
    code, _, err = invoke("run", "cancel", run_id)
    assert code == 1 and "already finished as cancelled" in err


def test_recipe_listing_and_show(ws: str) -> None:
    code, out, _ = invoke("recipe", "list", ws, "--json")
    assert "colour" in [r["name"] for r in json.loads(out)]
    code, out, _ = invoke("recipe", "show", ws, "colour")
    assert code == 0 and "exact_match (higher is better, tolerance 0.01)" in out
    assert "step_seconds" in out
