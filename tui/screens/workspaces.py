"""The workspaces screen: every workspace with what it holds; Enter makes the highlighted one
current, `n` creates one."""

from __future__ import annotations

from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from tui.screens.base import ApplianceScreen
from tui.screens.new_workspace import NewWorkspaceScreen
from tui.tables import fill, key_at_cursor

COUNTS = ("datasets", "runs", "models", "deployments")


class WorkspacesScreen(ApplianceScreen):
    BINDINGS = [
        Binding("enter", "choose", "Use", show=False),
        Binding("n", "new", "New"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._highlight: str | None = None  # the name to put the cursor on after a reload

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Loading workspaces…", id="empty", classes="empty")
        table: DataTable[str] = DataTable(id="workspaces", cursor_type="row", zebra_stripes=True)
        table.add_column("", key="current", width=1)
        table.add_column("workspace", key="name")
        for column in COUNTS:
            table.add_column(column, key=column)
        yield table
        yield Footer()

    def reload(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def _load(self) -> None:
        self.deliver(self._show, self.services.workspaces.list())

    def _show(self, rows: list[dict[str, Any]]) -> None:
        table = self.query_one("#workspaces", DataTable)
        fill(
            table,
            [
                (r["name"], ("●" if r["name"] == self.workspace else "", r["name"], *counts(r)))
                for r in rows
            ],
        )
        names = [row["name"] for row in rows]
        if self._highlight in names:
            table.move_cursor(row=names.index(self._highlight))
        self._highlight = None
        empty = self.query_one("#empty", Static)
        empty.update("No workspaces yet: press n to create one.")
        empty.display = not rows
        table.display = bool(rows)

    def action_choose(self) -> None:
        table = self.query_one("#workspaces", DataTable)
        name = key_at_cursor(table)
        if name is not None:
            self.appliance.workspace = name
            self.notify(f"Workspace {name}")

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        # Enter on the table selects its row; choosing works the same from the key or a click.
        event.stop()
        self.action_choose()

    def action_new(self) -> None:
        self.app.push_screen(NewWorkspaceScreen(self.services), self._created)

    def _created(self, name: str | None) -> None:
        if name is None:
            return
        self.notify(f"Created workspace {name}")
        self._highlight = name
        if self.workspace is None:
            self.appliance.workspace = name  # reloads through the workspace watch
        else:
            self.reload()


def counts(row: dict[str, Any]) -> list[str]:
    return [str(row[column]) for column in COUNTS]
