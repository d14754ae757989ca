"""The runs screen at 80×24 over a real registry and real training children (the tiny colour
recipe): a finished run's row and detail (params, loss sparkline, log tail), the `n` form
starting a run that then trains on its own, and `c` cancelling a slow run once confirmed.

pytest-asyncio is not installed, so each test runs its coroutine with `asyncio.run`."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Select, Static
from tui_pilot import Notes, drive, errors, press

from appliance.datasets.synthetic import generate
from appliance.plots import sparkline
from appliance.runs.launcher import start_run
from appliance.runs.tracking import FINISHED
from appliance.services import Services
from tui.app import ApplianceApp
from tui.screens.confirm import ConfirmScreen
from tui.screens.run_form import RunFormScreen

COLOUR = Path(__file__).parent / "recipes" / "colour"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with workspace ads, dataset photos, the colour recipe and one finished run of
    three steps."""
    home = tmp_path_factory.mktemp("tui-runs") / "home"
    with Services.open(home=home) as services:
        services.workspaces.create("ads")
        photos = generate(home.parent / "p", count=40, seed=3).path
        services.datasets.add("ads", "photos", photos)
        services.recipes.add("ads", COLOUR)
        launch = start_run(services, "ads", "colour", "photos", {"steps": "3"})
        run = launch.wait(interval=0.1)
        assert run["status"] == "succeeded", run["error"]
    return home


@pytest.fixture
def services(trained: Path, isolated_home: Path) -> Iterator[Services]:
    """Real SQLite over this test's own copy of the trained home."""
    shutil.copytree(trained, isolated_home)
    with Services.open(home=isolated_home) as opened:
        yield opened


async def eventually(
    pilot: Pilot[None], check: Callable[[], bool], what: str, timeout: float = 30
) -> None:
    """Keep the app running until `check()` holds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.1)


def rows(app: ApplianceApp) -> dict[str, list[str]]:
    widget = app.screen.query_one("#runs", DataTable)
    return {
        str(row.key.value): [str(cell) for cell in widget.get_row(row.key)]
        for row in widget.ordered_rows
    }


def text(app: ApplianceApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


def test_a_finished_run_is_listed_with_its_params_loss_curve_and_log(services: Services) -> None:
    (run,) = services.runs.list("ads")

    async def scenario(app: ApplianceApp, pilot: Pilot[None], notes: Notes) -> None:
        await press(app, pilot, "3")
        assert app.current_mode == "runs"
        cells = rows(app)[run["id"]]
        assert cells[:4] == [run["id"], "colour", "succeeded", "photos@1"]
        assert cells[5] != "–" and cells[6].startswith("exact_match ")
        await eventually(pilot, lambda: "params" in text(app, "#run-summary"), "the detail")
        summary = text(app, "#run-summary")
        assert f"{run['id']} colour · succeeded" in summary
        assert "steps=3" in summary and "rank=0" in summary and "step_seconds=0.0" in summary
        assert "3/3" in summary
        assert sparkline([1.0, 1 / 2, 1 / 3], 40) in summary and "1 → 0.333" in summary
        assert "registered colour@1" in text(app, "#run-log")

    assert errors(drive(services, scenario, workspace="ads")) == []


def test_the_form_starts_a_run_that_trains_on_its_own(services: Services) -> None:
    (before,) = services.runs.list("ads")

    async def scenario(app: ApplianceApp, pilot: Pilot[None], notes: Notes) -> None:
        await press(app, pilot, "3", "n")
        form = app.screen
        assert isinstance(form, RunFormScreen)
        recipe = form.query_one("#recipe", Select)
        await eventually(pilot, lambda: recipe.value != Select.NULL, "the recipes")
        assert form.query_one("#dataset", Select).value == "photos@1"
        recipe.value = "colour"  # the built-in captioner comes first
        await eventually(pilot, lambda: bool(form.query("#param-steps")), "the param fields")
        steps = form.query_one("#param-steps", Input)
        assert steps.value == "4"  # the recipe's default
        helps = [str(help.render()) for help in form.query("#params .help").results(Static)]
        assert "Progress steps to report." in helps
        steps.value = "2"
        seed = form.query_one("#param-seed", Input)
        seed.value = "7"
        seed.focus()
        await press(app, pilot, "enter")
        assert not isinstance(app.screen, RunFormScreen)
        (new,) = [r for r in services.runs.list("ads") if r["id"] != before["id"]]
        assert ("information", f"Started run {new['id']}") in notes
        await eventually(
            pilot, lambda: services.runs.get(new["id"])["status"] in FINISHED, "the run to end"
        )
        run = services.runs.get(new["id"])
        assert run["status"] == "succeeded", run["error"]
        assert run["params"]["steps"] == 2 and run["seed"] == 7
        await eventually(pilot, lambda: rows(app)[new["id"]][2] == "succeeded", "the table")

    assert errors(drive(services, scenario, workspace="ads")) == []


def test_c_cancels_a_running_run_once_confirmed(services: Services) -> None:
    launch = start_run(services, "ads", "colour", "photos", {"steps": "30", "step_seconds": "1"})
    deadline = time.monotonic() + 30
    while not services.runs.get(launch.run_id)["progress"]:
        assert time.monotonic() < deadline, "the run never reported progress"
        time.sleep(0.1)

    async def scenario(app: ApplianceApp, pilot: Pilot[None], notes: Notes) -> None:
        await press(app, pilot, "3")
        assert rows(app)[launch.run_id][2] == "running"  # the newest run, highlighted
        await eventually(pilot, lambda: "/30" in text(app, "#run-summary"), "the progress bar")
        await press(app, pilot, "c")
        assert isinstance(app.screen, ConfirmScreen)
        await press(app, pilot, "n")  # changed my mind
        assert not isinstance(app.screen, ConfirmScreen)
        assert services.runs.get(launch.run_id)["status"] == "running"
        await press(app, pilot, "c", "y")
        await eventually(
            pilot, lambda: services.runs.get(launch.run_id)["status"] in FINISHED, "the cancel"
        )
        assert services.runs.get(launch.run_id)["status"] == "cancelled"
        await eventually(pilot, lambda: rows(app)[launch.run_id][2] == "cancelled", "the table")

    try:
        notes = drive(services, scenario, workspace="ads")
    finally:
        if launch.process.poll() is None:
            launch.process.kill()
        launch.process.wait()
    assert errors(notes) == []
    assert ("information", f"Run {launch.run_id} cancelled") in notes
