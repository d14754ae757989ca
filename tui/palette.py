"""Command palette entries (ctrl+p): go to a screen, switch workspace, flip the theme. Workspace
read off the event loop when the palette opens."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from tui.app import ApplianceApp

Command = tuple[str, Callable[[], object], str]  # (text, action, help)


class ApplianceCommands(Provider):
    _workspaces: list[str] = []

    @property
    def appliance(self) -> ApplianceApp:
        return cast("ApplianceApp", self.app)

    async def startup(self) -> None:
        rows = await asyncio.to_thread(self.appliance.services.workspaces.list)
        self._workspaces = [row["name"] for row in rows]

    def _commands(self) -> list[Command]:
        app = self.appliance
        commands: list[Command] = [
            (f"Show {mode}", partial(app.show, mode), f"go to the {mode} screen")
            for mode in app.MODES
        ]
        commands.append(("Toggle light/dark theme", app.action_toggle_theme, "flip the theme"))
        commands += [
            (f"Use workspace {name}", partial(app.use_workspace, name), "make it current")
            for name in self._workspaces
            if name != app.workspace
        ]
        return commands

    async def discover(self) -> Hits:
        for text, action, help_text in self._commands():
            yield DiscoveryHit(text, action, text=text, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, action, help_text in self._commands():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), action, text=text, help=help_text)
