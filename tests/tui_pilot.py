"""Driving the TUI in tests: a fresh app at 80×24 over real services, a scenario run against it
with Textual's pilot, and every notification it showed collected for the assertions."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from textual.pilot import Pilot
from textual.widgets import DataTable

from appliance.services import Services
from tui.app import ApplianceApp

Notes = list[tuple[str, str]]  # (severity, message)
Scenario = Callable[[ApplianceApp, Pilot[None], Notes], Awaitable[None]]


def drive(services: Services, scenario: Scenario, **options: Any) -> Notes:
    """Run `scenario` against a fresh app at 80×24 (`options` go to ApplianceApp: server_url,
    workspace); returns every notification shown."""
    notes: Notes = []

    async def main() -> None:
        app = ApplianceApp(services, **options)
        shown = app.notify

        def notify(message: str, **kwargs: Any) -> None:
            notes.append((kwargs.get("severity", "information"), str(message)))
            shown(message, **kwargs)

        app.notify = notify  # type: ignore[method-assign]
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(app, pilot)
            await scenario(app, pilot, notes)
            assert app.is_running, "the app exited"

    asyncio.run(main())
    return notes


async def settle(app: ApplianceApp, pilot: Pilot[None]) -> None:
    """Let pending messages run, then wait for the workers they started and their results."""
    for _ in range(3):
        await pilot.pause()
        await app.workers.wait_for_complete()
    await pilot.pause()


async def press(app: ApplianceApp, pilot: Pilot[None], *keys: str) -> None:
    await pilot.press(*keys)
    await settle(app, pilot)


def table(app: ApplianceApp, selector: str) -> dict[str, list[str]]:
    """A DataTable's rows as {row key: cells as text}."""
    widget = app.screen.query_one(selector, DataTable)
    return {
        str(row.key.value): [str(cell) for cell in widget.get_row(row.key)]
        for row in widget.ordered_rows
    }


def errors(notes: Notes) -> list[str]:
    return [message for severity, message in notes if severity == "error"]
