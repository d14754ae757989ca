"""The terminal UI driven through Textual's pilot at 80×24 over a real registry: what each screen
lists, that keys do what the footer says (switch workspace, create one, pause a job), that a
failing read becomes an error notification, and that importing the UI leaves torch (and
textual-image, which asks the terminal questions) unloaded.

pytest-asyncio is not installed, so each test runs its coroutine with `asyncio.run`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file
from textual.pilot import Pilot
from textual.widgets import Static
from tui_pilot import Notes, drive, errors, press, settle, table

from appliance.access.actor import acting_as
from appliance.monitoring import alerts
from appliance.monitoring.capture import Capture
from appliance.registry import new_id
from appliance.services import Services
from appliance.serving.observer import CaptureRecord
from appliance.serving.options import DeployOptions
from tui.app import ApplianceApp
from tui.screens.help import HelpScreen
from tui.screens.new_workspace import NewWorkspaceScreen


def model_folder(tmp_path: Path) -> Path:
    """A registrable model folder: a config and safetensors weights (no torch needed)."""
    folder = tmp_path / "toy-model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "toy"}))
    save_file({"w": np.zeros(2, dtype=np.float32)}, str(folder / "model.safetensors"))
    return folder


def deploy_with_traffic(
    services: Services, tmp_path: Path, predictions: int = 40, keywords: str | None = None
) -> None:
    """ads/captions serving captioner v1 (int8 on cpu), with an hour of captured traffic in
    which every other prediction is low-light, so the low_light_rate alert fires; each request
    gave `keywords`, and each answer is "a red car"."""
    version = services.models.register("ads", "captioner", model_folder(tmp_path))
    options = DeployOptions(quantization="int8", device="cpu")
    services.deployments.record("ads", "captions", version, options)
    capture = Capture(services.registry, services.settings)
    now = datetime.now(UTC)
    for i in range(predictions):
        at = now - timedelta(seconds=3000 * i / predictions)
        capture.record(
            CaptureRecord(
                id=new_id(), workspace="ads", endpoint="captions",
                model_version_id=version["id"], created_at=at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                latency_ms=10.0 + i, confidence=0.8, description="a red car",
                warnings=["low_light"] if i % 2 else [], keywords=keywords,
            )
        )  # fmt: skip
    capture.flush()
    capture.close()
    assert any(t.rule == "low_light_rate" for t in alerts.evaluate(services))


def test_workspaces_screen_lists_counts_and_marks_the_current_one(
    services: Services, tmp_path: Path
) -> None:
    services.workspaces.create("ads")
    services.workspaces.create("cars")
    services.models.register("ads", "captioner", model_folder(tmp_path))

    async def scenario(app: ApplianceApp, pilot: Pilot[None], notes: Notes) -> None:
        assert app.current_mode == "workspaces"
        assert app.workspace == "ads"  # the first one, when none was given
        assert "workspace ads" in app.sub_title
        assert table(app, "#workspaces") == {
            "ads": ["●", "ads", "0", "0", "1", "0"],
            "cars": ["", "cars", "0", "0", "0", "0"],
        }

    assert errors(drive(services, scenario)) == []


def test_enter_switches_the_current_workspace(services: Services) -> None:
    services.workspaces.create("ads")
    services.workspaces.create("cars")

    async def scenario(app: ApplianceApp, pilot: Pilot[None], notes: Notes) -> None:
        await press(app, pilot, "down", "enter")
        assert app.workspace == "cars"
        assert "workspace cars" in app.sub_title
        rows = table(app, "#workspaces")
        assert (rows["ads"][0], rows["cars"][0]) == ("", "●")

    drive(services, scenario)


def test_n_creates_a_workspace_and_a_bad_name_is_a_notification(services: Services) -> None:
    async def scenario(app: ApplianceApp, pilot: Pilot[None], notes: Notes) -> None:
        assert app.workspace is None
        assert "no workspace" in app.sub_title
        empty = app.screen.query_one("#empty", Static)
        assert empty.display and "press n" in str(empty.render())

        await press(app, pilot, "n")
        assert isinstance(app.screen, NewWorkspaceScreen)
        await pilot.press(*"a b")
        await press(app, pilot, "enter")
        assert isinstance(app.screen, NewWorkspaceScreen)  # stays open to fix the name
        assert errors(notes) and "workspace name" in errors(notes)[0]

        await pilot.press("backspace", "backspace", "backspace", *"cars")
        await press(app, pilot, "enter")
        assert not isinstance(app.screen, NewWorkspaceScreen)
        assert [w["name"] for w in services.workspaces.list()] == ["cars"]
        assert list(table(app, "#workspaces")) == ["cars"]
        assert app.workspace == "cars"  # the first workspace becomes current

        await press(app, pilot, "n", "escape")
        assert not isinstance(app.screen, NewWorkspaceScreen)

    drive(services, scenario)


def test_jobs_screen_lists_jobs_and_p_pauses_and_resumes(services: Services) -> None:
    services.workspaces.create("ads")
    services.jobs.add("ads", "tidy", "housekeeping", {"interval_s": 3600})

    async def scenario(app: ApplianceApp, pilot: Pilot[None], notes: Notes) -> None:
        await press(app, pilot, "j")
        assert app.current_mode == "jobs"
        row = table(app, "#jobs")["tidy"]
        assert row[:4] + row[5:] == ["tidy", "housekeeping", "–", "every 1h", "active", "–", "–"]
        assert re.fullmatch(r"(\d\d-\d\d )?\d\d:\d\d", row[4])  # next run: an hour on
        await press(app, pilot, "p")
        assert services.jobs.get("ads", "tidy")["enabled"] is False
        await settle(app, pilot)
        assert table(app, "#jobs")["tidy"][4:6] == ["–", "paused"]
        await press(app, pilot, "p")
        assert services.jobs.get("ads", "tidy")["enabled"] is True

    notes = drive(services, scenario)
    assert ("information", "Paused job tidy") in notes
    assert errors(notes) == []


def test_deployments_and_monitoring_on_an_empty_workspace(services: Services) -> None:
    services.workspaces.create("ads")

    async def scenario(app: ApplianceApp, pilot: Pilot[None], notes: Notes) -> None:
        for key, mode in (("d", "deployments"), ("m", "monitoring")):
            await press(app, pilot, key)
            assert app.current_mode == mode
            empty = app.screen.query_one("#empty", Static)
            assert empty.display
            assert "No deployments in workspace ads" in str(empty.render())
        level = app.screen.query_one("#dora-level", Static)
        assert "low" in str(level.render())
        assert not app.screen.query_one("#changes", Static).display  # no change to name

    assert errors(drive(services, scenario)) == []


def test_deployments_and_monitoring_show_traffic_and_alerts(
    services: Services, tmp_path: Path
) -> None:
    services.workspaces.create("ads")
    with acting_as("ann"):  # who deployed: the deployments table and the monitoring screen say
        deploy_with_traffic(services, tmp_path, keywords="red, acme")  # red is in "a red car"

    async def scenario(app: ApplianceApp, pilot: Pilot[None], notes: Notes) -> None:
        await press(app, pilot, "d")
        row = table(app, "#deployments")["captions"]
        endpoint, model, by, quant, device, resident, memory, count, p50, p95, spark = row
        assert (endpoint, model, by, quant, device, count) == (
            "captions", "captioner@v1", "ann", "int8", "cpu", "40",
        )  # fmt: skip
        assert resident == memory == "–"  # no server here: nothing to say what it holds
        assert p50.endswith(" ms") and p95.endswith(" ms")
        assert spark.strip()

        await press(app, pilot, "m")
        block = str(app.screen.query_one("#endpoints .endpoint", Static).render())
        assert "captioner@v1" in block and "40 predictions" in block
        assert "low light" in block and "50.0%" in block
        assert "▲ low_light_rate" in block  # firing
        assert "✓ p95_latency_ms" in block
        assert "40 of 80 honoured · 40 requests · 0 said ignored" in block
        deploys = str(app.screen.query_one("#dora-frequency", Static).render())
        assert "deploys/day" in deploys
        changes = app.screen.query_one("#changes", Static)
        assert changes.display
        assert str(changes.render()).startswith("changes  ann deployed captions (captioner@1) ")

    assert errors(drive(services, scenario)) == []


def test_help_lists_the_keys_and_t_flips_the_theme(services: Services) -> None:
    async def scenario(app: ApplianceApp, pilot: Pilot[None], notes: Notes) -> None:
        await press(app, pilot, "question_mark")
        assert isinstance(app.screen, HelpScreen)
        keys = {row[0]: row[1] for row in table(app, "#keys").values()}
        assert {"n", "w", "d", "m", "j", "?", "t"} <= set(keys)
        assert keys["n"] == "New"
        await press(app, pilot, "escape")
        assert not isinstance(app.screen, HelpScreen)

        dark = app.theme
        await press(app, pilot, "t")
        assert app.theme != dark and not app.current_theme.dark
        await press(app, pilot, "t")
        assert app.theme == dark

    assert errors(drive(services, scenario)) == []


def test_command_palette_switches_screen_and_workspace(services: Services) -> None:
    services.workspaces.create("ads")
    services.workspaces.create("cars")

    async def scenario(app: ApplianceApp, pilot: Pilot[None], notes: Notes) -> None:
        await press(app, pilot, "ctrl+p")
        await pilot.press(*"jobs")
        await pilot.pause(0.3)
        await press(app, pilot, "enter")
        assert app.current_mode == "jobs"

        await press(app, pilot, "ctrl+p")
        await pilot.press(*"cars")
        await pilot.pause(0.3)
        await press(app, pilot, "enter")
        assert app.workspace == "cars"

    assert errors(drive(services, scenario)) == []


def test_a_failing_read_is_an_error_notification(services: Services) -> None:
    async def scenario(app: ApplianceApp, pilot: Pilot[None], notes: Notes) -> None:
        await press(app, pilot, "d")
        await press(app, pilot, "j")

    notes = drive(services, scenario, workspace="ghost", server_url="http://127.0.0.1:8731")
    assert errors(notes) and all("no workspace 'ghost'" in e for e in errors(notes))


def test_importing_the_tui_leaves_torch_unloaded() -> None:
    # textual_image asks the terminal what it shows when imported: only `run_tui` may do that.
    code = (
        "import sys, tui; assert 'textual' not in sys.modules, 'tui loads textual';"
        " import tui.app; assert 'torch' not in sys.modules, 'tui.app loads torch';"
        " assert 'textual_image' not in sys.modules, 'tui.app loads textual_image'"
    )
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_monitoring_shows_input_drift_per_feature(services: Services, tmp_path: Path) -> None:
    """A version trained on ordinary photos, served a stream of dark ones: brightness drifts."""
    from appliance.datasets.synthetic import generate

    services.workspaces.create("ads")
    photos = generate(tmp_path / "photos", count=40, seed=2).path
    dataset = services.datasets.add("ads", "photos", photos).version
    version = services.models.register(
        "ads", "captioner", model_folder(tmp_path),
        dataset_id=dataset["dataset_id"], dataset_digest=dataset["digest"],
    )  # fmt: skip
    services.deployments.record("ads", "captions", version, DeployOptions())
    capture = Capture(services.registry, services.settings)
    for i in range(40):
        capture.record(
            CaptureRecord(
                id=new_id(), workspace="ads", endpoint="captions",
                model_version_id=version["id"],
                created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                latency_ms=10.0, confidence=0.5, description="a red mug",
                features={"width": 64.0, "height": 64.0, "brightness": 8.0 + i % 3,
                          "brightness_p99": 30.0, "contrast": 4.0, "sharpness": 3.0},
            )
        )  # fmt: skip
    capture.flush()
    capture.close()

    async def scenario(app: ApplianceApp, pilot: Pilot[None], notes: Notes) -> None:
        await press(app, pilot, "6")
        block = str(app.screen.query_one("#endpoints .endpoint", Static).render())
        assert "drift (psi)" in block and "brightness" in block and "width 0.00" in block

    assert errors(drive(services, scenario)) == []
