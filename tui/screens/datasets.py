"""The datasets screen (being built)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Footer, Header, Static

from tui.screens.base import ApplianceScreen


class DatasetsScreen(ApplianceScreen):
    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Coming in the next step.", id="placeholder")
        yield Footer()

    def reload(self) -> None:
        pass
