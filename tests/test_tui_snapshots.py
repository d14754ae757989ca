"""Snapshots of every screen at 80×24, as text: a change in what a screen shows fails here until
the snapshot is renewed on purpose (UPDATE_SNAPSHOTS=1 pytest tests/test_tui_snapshots.py).

The data is fixed (names, no runs, no traffic) so the screens are deterministic; clock times
are masked."""

from __future__ import annotations

import asyncio
import io
import os
import re
from pathlib import Path

import pytest
from rich.console import Console
from test_tui import model_folder

from appliance.services import Services
from tui.app import ApplianceApp

SNAPSHOTS = Path(__file__).parent / "snapshots" / "tui"
SIZE = (80, 24)
SCREENS = {
    "workspaces": "1", "datasets": "2", "runs": "3", "models": "4",
    "deployments": "5", "monitoring": "6", "jobs": "7", "playground": "8",
}  # fmt: skip
CLOCK = re.compile(r"\b(\d{4}-)?\d\d-\d\d( \d\d:\d\d)?\b|\b\d\d:\d\d(:\d\d)?\b")


def screen_text(app: ApplianceApp) -> str:
    """The screen as the terminal shows it, in plain text."""
    update = app.screen._compositor.render_update(full=True)
    console = Console(
        file=io.StringIO(), width=SIZE[0], height=SIZE[1], record=True, color_system=None
    )
    console.print(update)
    lines = [CLOCK.sub("HH:MM", line.rstrip()) for line in console.export_text().splitlines()]
    return "\n".join(lines).rstrip() + "\n"


@pytest.fixture
def fixed(services: Services) -> Services:
    services.workspaces.create("ads")
    services.workspaces.create("cars")
    # Yearly, so its next run is never today: an hourly one read "HH:MM" most of the day but
    # "MM-DD HH:MM" in the last hour before midnight, and the column grew.
    services.jobs.add("ads", "tidy", "housekeeping", {"cron": "0 0 1 1 *"})
    return services


def render(services: Services, screen: str) -> str:
    async def rendered() -> str:
        app = ApplianceApp(services, workspace="ads")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press(SCREENS[screen])
            for _ in range(3):
                await pilot.pause()
                await app.workers.wait_for_complete()
            await pilot.pause()
            return screen_text(app)

    return asyncio.run(rendered())


@pytest.mark.parametrize("screen", list(SCREENS))
def test_screen_snapshot(fixed: Services, screen: str) -> None:
    check_snapshot(screen, render(fixed, screen))


def test_models_snapshot_with_a_checked_version(fixed: Services, tmp_path: Path) -> None:
    """A registered text classifier: its versions, and what the highlighted one is."""
    check = {"quantization": {"cpu": ["none", "int8"]}, "seconds": 0.4}
    info = {"architecture": "BertForSequenceClassification", "parameters": 4_386_000,
            "weight_bytes": 17_544_000, "check": check}  # fmt: skip
    fixed.models.register("ads", "router", model_folder(tmp_path), runtime="huggingface",
                          task="text-classification", info=info, metrics={"accuracy": 0.93})  # fmt: skip
    check_snapshot("models-versions", render(fixed, "models"))


def check_snapshot(screen: str, text: str) -> None:
    path = SNAPSHOTS / f"{screen}.txt"
    if os.environ.get("UPDATE_SNAPSHOTS") or not path.exists():
        path.write_text(text)
        if not os.environ.get("UPDATE_SNAPSHOTS"):
            pytest.fail(f"no snapshot for {screen} yet: wrote {path}; review it and commit")
    assert text == path.read_text(), f"{screen} changed; renew with UPDATE_SNAPSHOTS=1"
