"""The modal that creates a workspace. The service validates the name; its complaint appears as
a notification and the modal stays open so the name can be fixed."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label
from textual.worker import Worker

from appliance.services import Services
from tui.errors import report_failure


class NewWorkspaceScreen(ModalScreen[str | None]):
    """Dismisses with the created workspace's name, or None when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, services: Services) -> None:
        super().__init__()
        self._services = services

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("New workspace", classes="title")
            yield Input(placeholder="name, e.g. cars", id="name")
            with Horizontal(classes="buttons"):
                yield Button("Create", variant="primary", id="create")
                yield Button("Cancel", id="cancel")

    @on(Input.Submitted, "#name")
    @on(Button.Pressed, "#create")
    def submit(self) -> None:
        self._create(self.query_one("#name", Input).value.strip())

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)

    @work(thread=True, exclusive=True, exit_on_error=False)
    def _create(self, name: str) -> None:
        created = self._services.workspaces.create(name)
        self.app.call_from_thread(self.dismiss, created["name"])

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        report_failure(self, event.worker, event.state)
