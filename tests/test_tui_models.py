"""The models screen at 80×24 over a real registry: two versions of the tiny colour recipe side
by side with their metrics and lineage (the recipe's gate metric first), what the highlighted
version is (task, runtime, architecture, size) with the quantization modes its register check
found, and `p` promoting through the evaluation gate, which moves production to the good version
and refuses the worse one with its numbers.

pytest-asyncio is not installed, so each test runs its coroutine with `asyncio.run`."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_tui import model_folder
from textual.pilot import Pilot
from textual.widgets import DataTable, Static
from tui_pilot import Notes, drive, errors, press

from appliance.datasets.synthetic import generate
from appliance.runs.launcher import start_run
from appliance.services import Services
from tui.app import ApplianceApp
from tui.screens.confirm import ConfirmScreen
from tui.screens.models import metric_columns, version_detail

COLOUR = Path(__file__).parent / "recipes" / "colour"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with colour@1 (rank 0: right on a quarter of the held-out rows) and colour@2
    (rank 9: never right), both trained on photos@1."""
    home = tmp_path_factory.mktemp("tui-models") / "home"
    with Services.open(home=home) as services:
        services.workspaces.create("ads")
        photos = generate(home.parent / "p", count=48, seed=3).path
        services.datasets.add("ads", "photos", photos)
        services.recipes.add("ads", COLOUR)
        for params in ({}, {"rank": "9"}):
            launch = start_run(services, "ads", "colour", "photos", params)
            run = launch.wait(interval=0.1)
            assert run["status"] == "succeeded", run["error"]
    return home


@pytest.fixture
def services(trained: Path, isolated_home: Path) -> Iterator[Services]:
    """Real SQLite over this test's own copy of the trained home."""
    shutil.copytree(trained, isolated_home)
    with Services.open(home=isolated_home) as opened:
        yield opened


def by_first_cell(app: ApplianceApp, selector: str) -> dict[str, list[str]]:
    """A DataTable's rows in order as {first cell: the other cells}."""
    widget = app.screen.query_one(selector, DataTable)
    cells = [[str(cell) for cell in widget.get_row(row.key)] for row in widget.ordered_rows]
    return {row[0]: row[1:] for row in cells}


def columns(app: ApplianceApp, selector: str) -> list[str]:
    widget = app.screen.query_one(selector, DataTable)
    return [str(column.label) for column in widget.columns.values()]


def test_the_versions_of_a_model_side_by_side(services: Services) -> None:
    first, second = services.models.versions("ads", "colour")
    assert first["metrics"]["exact_match"] == 0.25 and second["metrics"]["exact_match"] == 0

    async def scenario(app: ApplianceApp, pilot: Pilot[None], notes: Notes) -> None:
        await press(app, pilot, "4")
        assert app.current_mode == "models"
        assert by_first_cell(app, "#models") == {"colour": ["2", "v2", "–"]}
        assert columns(app, "#versions") == [
            "version", "aliases", "exact_match", "train_seconds", "dataset", "run", "created",
        ]  # fmt: skip
        versions = by_first_cell(app, "#versions")
        assert list(versions) == ["v2", "v1"]  # the newest first
        assert versions["v1"][:2] == ["–", "0.250"] and versions["v2"][:2] == ["–", "0.000"]
        assert versions["v1"][3:5] == ["photos@1", first["run_id"]]
        assert versions["v2"][3:5] == ["photos@1", second["run_id"]]

    assert errors(drive(services, scenario, workspace="ads")) == []


def detail(app: ApplianceApp) -> str:
    return str(app.screen.query_one("#version-detail", Static).render())


def test_the_highlighted_version_says_what_it_is_and_how_it_quantizes(
    services: Services, tmp_path: Path
) -> None:
    check = {"quantization": {"cpu": ["none", "int8"], "cuda": ["none", "fp16", "nf4"]},
             "seconds": 0.4}  # fmt: skip
    info = {"architecture": "BertForSequenceClassification", "model_type": "bert",
            "parameters": 4_386_000, "weight_bytes": 17_544_000, "check": check}  # fmt: skip
    services.models.register("ads", "router", model_folder(tmp_path), runtime="huggingface",
                             task="text-classification", info=info)  # fmt: skip

    async def scenario(app: ApplianceApp, pilot: Pilot[None], notes: Notes) -> None:
        await press(app, pilot, "4")
        assert list(by_first_cell(app, "#models")) == ["colour", "router"]
        # colour@2 (the newest) is highlighted: a run registered it, so no check ran.
        assert detail(app).startswith(
            "v2: image-to-text, recipe runtime, GPT2LMHeadModel, 348 parameters, 1.4 KB\n"
            "Quantization: not checked at register\ncalibration: "
        )
        app.screen.query_one("#versions", DataTable).focus()
        await press(app, pilot, "down")
        assert detail(app).startswith("v1: image-to-text, recipe runtime, GPT2LMHeadModel")
        app.screen.query_one("#models", DataTable).focus()
        await press(app, pilot, "down")
        assert detail(app) == (
            "v1: text-classification, huggingface runtime, BertForSequenceClassification, "
            "4.39M parameters, 16.7 MB\nQuantization: cpu none, int8; cuda none, fp16, nf4\n"
            "calibration: none (appliance model calibrate measures one)"
        )

    assert errors(drive(services, scenario, workspace="ads")) == []


def test_version_detail_words_are_the_cli_s() -> None:
    from appliance.cli.model import describe

    row = {"version": 3, "task": None, "runtime": None, "size": 2048, "info": {}}
    assert str(version_detail(row)) == (
        f"v3: {describe(row)}\nQuantization: not checked at register\n"
        "calibration: none (appliance model calibrate measures one)"
    )
    trust = {"signal": "geo_prob", "method": "platt", "kept": "plain", "metrics": {"ece": 0.01},
             "rows": {"held_out": 40, "shifted": 40}, "uncertain": {},
             "reliability": [{"low": 0.9, "high": 1.0, "accuracy": 0.95, "count": 30}]}  # fmt: skip
    shown = str(version_detail({**row, "trust": trust}))
    assert "calibration: geo_prob by platt, on 40 held-out and 40 shifted rows" in shown
    assert "0.9-1.0  ███████████████████· 0.95  n=30" in shown
    assert describe(row) == "task unknown, no runtime, 2.0 KB"


def test_p_promotes_through_the_gate_and_a_worse_version_is_refused(services: Services) -> None:
    async def scenario(app: ApplianceApp, pilot: Pilot[None], notes: Notes) -> None:
        await press(app, pilot, "4")
        app.screen.query_one("#versions", DataTable).focus()
        await press(app, pilot, "down", "p")  # v1
        assert isinstance(app.screen, ConfirmScreen)
        await press(app, pilot, "y")
        assert services.models.get("ads", "colour@production")["version"] == 1
        assert by_first_cell(app, "#versions")["v1"][0] == "production"
        assert by_first_cell(app, "#models")["colour"][2] == "v1"

        await press(app, pilot, "up", "p", "y")  # v2, worse
        assert services.models.get("ads", "colour@production")["version"] == 1
        assert by_first_cell(app, "#versions")["v2"][0] == "–"

    notes = drive(services, scenario, workspace="ads")
    assert errors(notes) == []
    assert (
        "information",
        "colour@1 is now production: exact_match 0.2500 on 4 held-out rows of photos@1 "
        "(no version held it before)",
    ) in notes
    (refused,) = [message for severity, message in notes if severity == "warning"]
    assert "colour@2 is worse than production (colour@1)" in refused
    assert "exact_match 0.0000 vs 0.2500" in refused and "--force" not in refused


def test_the_gate_metric_comes_first_so_80_columns_show_it(
    services: Services, tmp_path: Path
) -> None:
    metrics = {"acc_a": 0.1, "acc_b": 0.2, "acc_c": 0.3, "acc_d": 0.4, "exact_match": 0.5}
    folder = model_folder(tmp_path)
    services.models.register("ads", "captioner", folder, metrics=metrics, recipe="captioner")

    async def scenario(app: ApplianceApp, pilot: Pilot[None], notes: Notes) -> None:
        await press(app, pilot, "4")
        assert list(by_first_cell(app, "#models")) == ["captioner", "colour"]  # the first shows
        assert columns(app, "#versions")[2:6] == ["exact_match", "acc_a", "acc_b", "acc_c"]
        assert by_first_cell(app, "#versions")["v1"][1:3] == ["0.500", "0.100"]

    assert errors(drive(services, scenario, workspace="ads")) == []


def test_metric_columns_put_the_gate_first_then_the_rest_by_name() -> None:
    rows = [{"metrics": {"b": 1, "a": 2, "z": 3}}, {"metrics": {"c": 4}}]
    assert metric_columns(rows, []) == ["a", "b", "c", "z"]
    assert metric_columns(rows, ["z"]) == ["z", "a", "b", "c"]
    assert metric_columns(rows, ["missing", "c", "z", "c"], limit=3) == ["c", "z", "a"]
