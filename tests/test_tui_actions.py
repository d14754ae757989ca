"""The TUI's live actions through a real server at 80×24: the deploy form moves an endpoint to
another version, a confirmed rollback moves it back, `g` runs a job now, `a` approves a retrain
held for approval; without a server the actions say how to get one; and the monitoring screen
shows the machine's system metrics. The tiny colour recipe is the model (two versions trained
once per module, each test working on its own copy of that home).

pytest-asyncio is not installed, so each test runs its coroutine with `asyncio.run`."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from serving_harness import running_server, wait_ready
from textual.pilot import Pilot
from textual.widgets import Select, Static
from tui_pilot import Notes, Scenario, errors, press
from tui_pilot import drive as pilot_drive

from appliance.datasets.synthetic import generate
from appliance.monitoring.system import SystemMetrics, SystemSampler
from appliance.runs.launcher import start_run
from appliance.scheduler.runner import run_job
from appliance.services import Services
from appliance.serving.options import DeployOptions
from tui.app import ApplianceApp
from tui.screens.confirm import ConfirmScreen
from tui.screens.deploy_form import DeployFormScreen

COLOUR = Path(__file__).parent / "recipes" / "colour"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with workspace ads, dataset photos, the colour recipe, versions colour@1 (params
    {}) and colour@2 (rank 1), and endpoint captions serving colour@1."""
    home = tmp_path_factory.mktemp("tui-actions") / "home"
    with Services.open(home=home) as services:
        services.workspaces.create("ads")
        photos = generate(home.parent / "photos", count=24, seed=4).path
        services.datasets.add("ads", "photos", photos)
        services.recipes.add("ads", COLOUR)
        for params in ({}, {"rank": "1"}):
            run = start_run(services, "ads", "colour", "photos", params).wait()
            assert run["status"] == "succeeded", run["error"]
        services.deployments.record(
            "ads", "captions", services.models.get("ads", "colour@1"), DeployOptions(device="cpu")
        )
    return home


@pytest.fixture
def services(trained: Path, isolated_home: Path) -> Iterator[Services]:
    """Real SQLite over this test's own copy of the trained home."""
    shutil.copytree(trained, isolated_home)
    with Services.open(home=isolated_home) as opened:
        yield opened


def drive(services: Services, scenario: Scenario, server: bool = True) -> Notes:
    """Run `scenario` in workspace ads, with a real server unless `server` is False."""
    if not server:
        return pilot_drive(services, scenario, workspace="ads")
    with running_server(services) as client:
        wait_ready(client)
        return pilot_drive(services, scenario, workspace="ads", server_url=str(client.base_url))


def served(services: Services) -> str:
    (row,) = [d for d in services.deployments.list("ads") if d["endpoint"] == "captions"]
    return f"{row['model']}@{row['version']}"


def test_deploy_form_moves_the_endpoint_and_a_confirmed_rollback_returns(
    services: Services,
) -> None:
    async def scenario(app: ApplianceApp, pilot: Pilot[None], notes: Notes) -> None:
        await press(app, pilot, "d")
        await press(app, pilot, "n")
        form = app.screen
        assert isinstance(form, DeployFormScreen)
        assert form.request().endpoint == "captions"  # the highlighted endpoint
        choices = [ref for _, ref in form._choices]
        assert {"colour@1", "colour@2"} <= set(choices)
        form.query_one("#model", Select).value = "colour@2"
        form.query_one("#device", Select).value = "cpu"
        await press(app, pilot, "enter")  # submits from the endpoint field
        assert not isinstance(app.screen, DeployFormScreen)
        assert served(services) == "colour@2"
        assert ("information", "captions → colour@2 (none, cpu)") in notes

        await press(app, pilot, "b")
        assert isinstance(app.screen, ConfirmScreen)
        await press(app, pilot, "n")  # no: nothing changes
        assert served(services) == "colour@2"
        await press(app, pilot, "b", "y")
        assert not isinstance(app.screen, ConfirmScreen)
        assert served(services) == "colour@1"

        await press(app, pilot, "z")  # change quantization: the current version prefilled
        form = app.screen
        assert isinstance(form, DeployFormScreen)
        assert form.request().model == "colour@1"
        await press(app, pilot, "escape")
        assert not isinstance(app.screen, DeployFormScreen)

    notes = drive(services, scenario)
    assert errors(notes) == []
    assert any(m.startswith("Rolled back: captions → colour@1") for _, m in notes)


def test_g_runs_the_highlighted_job_now(services: Services) -> None:
    job = services.jobs.add("ads", "tidy", "housekeeping", {"interval_s": 3600})

    async def scenario(app: ApplianceApp, pilot: Pilot[None], notes: Notes) -> None:
        await press(app, pilot, "j")
        await press(app, pilot, "g")
        deadline = time.monotonic() + 10
        while not [r for r in services.jobs.runs(job["id"]) if r["status"] == "succeeded"]:
            assert time.monotonic() < deadline, services.jobs.runs(job["id"])
            await pilot.pause(0.1)

    notes = drive(services, scenario)
    assert errors(notes) == []
    (run,) = services.jobs.runs(job["id"])
    assert ("information", f"Started job tidy: job run {run['id']}") in notes


def test_a_approves_the_retrain_held_for_approval(services: Services) -> None:
    job = services.jobs.add(
        "ads", "careful", "retrain", {"cron": "0 0 1 1 *"}, target="colour",
        params={"recipe": "colour", "dataset": "photos", "endpoint": "captions",
                "policy": "approve"},
    )  # fmt: skip
    held = run_job(services, job, "manual")
    assert held["status"] == "awaiting_approval", held
    version = held["detail"]["version_ref"]
    assert served(services) == "colour@1" != version

    async def scenario(app: ApplianceApp, pilot: Pilot[None], notes: Notes) -> None:
        await press(app, pilot, "j")
        approvals = app.screen.query_one("#approvals", Static)
        assert approvals.display
        text = str(approvals.render())
        assert "careful" in text and version in text and "started" in text
        await press(app, pilot, "a")
        assert served(services) == version
        assert not app.screen.query_one("#approvals", Static).display

    notes = drive(services, scenario)
    assert errors(notes) == []
    assert services.jobs.runs(job["id"])[0]["status"] == "succeeded"


def test_without_a_server_the_actions_say_how_to_get_one(services: Services) -> None:
    services.jobs.add("ads", "tidy", "housekeeping", {"interval_s": 3600})

    async def scenario(app: ApplianceApp, pilot: Pilot[None], notes: Notes) -> None:
        await press(app, pilot, "d")
        for key in ("n", "b", "z"):
            await press(app, pilot, key)
            assert not isinstance(app.screen, (DeployFormScreen, ConfirmScreen))
        await press(app, pilot, "j", "g")

    notes = drive(services, scenario, server=False)
    warnings = [m for severity, m in notes if severity == "warning"]
    assert warnings.count("start `appliance up` with its server to deploy") == 3
    assert "start `appliance up` with its server to run jobs" in warnings
    assert served(services) == "colour@1"


def test_monitoring_shows_the_system_panel(services: Services) -> None:
    SystemMetrics(services.registry).record(SystemSampler(services.settings.home).sample())

    async def scenario(app: ApplianceApp, pilot: Pilot[None], notes: Notes) -> None:
        await press(app, pilot, "m")
        panel = app.screen.query_one("#system", Static)
        assert panel.display
        text = str(panel.render())
        for label in ("system", "cpu", "process", "machine", "memory", "rss", "disk", "used"):
            assert label in text, text

    assert errors(drive(services, scenario, server=False)) == []
