"""The help screen: every key binding active where `?` was pressed, with what it does."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape", "dismiss", "Close"),
        Binding("question_mark", "dismiss", "Close", key_display="?"),
        Binding("q", "dismiss", "Close", show=False),
    ]

    def __init__(self, keys: list[tuple[str, str]]) -> None:
        """`keys`: (key as displayed, description) pairs."""
        super().__init__()
        self._keys = keys

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("Keys", classes="title")
            table: DataTable[str] = DataTable(id="keys", cursor_type="none", show_header=False)
            table.add_columns("key", "action")
            for key, description in self._keys:
                table.add_row(key, description, key=key)
            yield table
            yield Label("ctrl+p opens the command palette · esc closes this", classes="hint")

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)
