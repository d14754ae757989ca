"""The Textual application: one screen per concern (workspaces, datasets, runs, models,
deployments, monitoring, jobs, playground, review, platform) as app modes, a current workspace
shown in the header, key bindings, the platform rating bar (`!`), a help screen and command
palette entries. It is handed a ready `Services`; everything it reads goes through them, and live
changes go through the server (`server()`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual import work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.reactive import reactive
from textual.worker import Worker

from appliance.services import Services
from tui.errors import report_failure
from tui.graphics import HALFBLOCKS
from tui.palette import ApplianceCommands
from tui.rating import RatingBar
from tui.screens.datasets import DatasetsScreen
from tui.screens.deployments import DeploymentsScreen
from tui.screens.help import HelpScreen
from tui.screens.jobs import JobsScreen
from tui.screens.models import ModelsScreen
from tui.screens.monitoring import MonitoringScreen
from tui.screens.platform import PlatformScreen
from tui.screens.playground import PlaygroundScreen
from tui.screens.review import ReviewScreen
from tui.screens.runs import RunsScreen
from tui.screens.workspaces import WorkspacesScreen

if TYPE_CHECKING:
    from appliance.server.client import ServerClient

DARK, LIGHT = "textual-dark", "textual-light"


class ApplianceApp(App[None]):
    TITLE = "appliance"
    CSS_PATH = "app.tcss"
    MODES = {
        "workspaces": WorkspacesScreen,
        "datasets": DatasetsScreen,
        "runs": RunsScreen,
        "models": ModelsScreen,
        "deployments": DeploymentsScreen,
        "monitoring": MonitoringScreen,
        "jobs": JobsScreen,
        "playground": PlaygroundScreen,
        "review": ReviewScreen,
        "platform": PlatformScreen,
    }
    COMMANDS = App.COMMANDS | {ApplianceCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("1", "show('workspaces')", "Spaces"),
        Binding("2", "show('datasets')", "Data"),
        Binding("3", "show('runs')", "Runs"),
        Binding("4", "show('models')", "Models"),
        Binding("5", "show('deployments')", "Deploys"),
        Binding("6", "show('monitoring')", "Monitor"),
        Binding("7", "show('jobs')", "Jobs"),
        Binding("8", "show('playground')", "Play"),
        Binding("9", "show('review')", "Review"),
        Binding("0", "show('platform')", "Platform", show=False),
        Binding(
            "exclamation_mark", "rate_platform", "Rate the platform", key_display="!", show=False
        ),
        Binding("w", "show('workspaces')", "Workspaces", show=False),
        Binding("d", "show('deployments')", "Deployments", show=False),
        Binding("m", "show('monitoring')", "Monitoring", show=False),
        Binding("j", "show('jobs')", "Jobs", show=False),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("t", "toggle_theme", "Theme", show=False),
        Binding("q", "quit", "Quit", show=False),
    ]

    workspace: reactive[str | None] = reactive(None)
    """The workspace the screens show; None until one exists."""

    def __init__(
        self,
        services: Services,
        server_url: str | None = None,
        workspace: str | None = None,
        image_protocol: str = HALFBLOCKS,
    ) -> None:
        super().__init__()
        self.services = services
        self.server_url = server_url
        self._server: ServerClient | None = None
        self._initial_workspace = workspace
        self.image_protocol = image_protocol
        """How image previews draw: `tui.graphics` protocols; half blocks unless `run_tui`
        found the terminal shows pixels (tests and snapshots keep half blocks)."""
        self.theme = DARK

    def server(self) -> ServerClient | None:
        """The HTTP server's client (one, shared by the workers), or None when the UI runs
        without one (--no-server)."""
        if self.server_url is None:
            return None
        if self._server is None:
            from appliance.server.client import ServerClient  # httpx: not before it is needed

            self._server = ServerClient(self.server_url, self.services.settings)
        return self._server

    def on_unmount(self) -> None:
        if self._server is not None:
            self._server.close()

    def on_mount(self) -> None:
        self.switch_mode("workspaces")
        if self._initial_workspace is not None:
            self.workspace = self._initial_workspace
        else:
            self._pick_workspace()
        self._show_workspace()

    @work(thread=True, exit_on_error=False)
    def _pick_workspace(self) -> None:
        rows = self.services.workspaces.list()
        if rows:
            self.call_from_thread(self._first_workspace, rows[0]["name"])

    def _first_workspace(self, name: str) -> None:
        if self.workspace is None:  # the user may have chosen one meanwhile
            self.workspace = name

    def watch_workspace(self) -> None:
        self._show_workspace()

    def _show_workspace(self) -> None:
        where = f"workspace {self.workspace}" if self.workspace else "no workspace"
        self.sub_title = f"{where} · {self.server_url}" if self.server_url else where

    def show(self, mode: str) -> None:
        if self.current_mode != mode:
            self.switch_mode(mode)

    def action_show(self, mode: str) -> None:
        self.show(mode)

    def use_workspace(self, name: str) -> None:
        self.workspace = name
        self.notify(f"Workspace {name}")

    def action_rate_platform(self) -> None:
        """Open the rating bar at the bottom of the current screen (or go back to it)."""
        found = self.screen.query(RatingBar)
        bar = found.first() if found else RatingBar()
        if not found:
            self.screen.mount(bar)
        bar.focus()

    def action_toggle_theme(self) -> None:
        self.theme = LIGHT if self.current_theme.dark else DARK

    def action_help(self) -> None:
        # The keys this app and its screen declare, and any other the footer shows (the
        # palette); not the focus and copy keys every Textual app has.
        ours = _declared_keys(self, self.screen)
        keys = [
            (active.binding.key_display or self.get_key_display(active.binding), description)
            for key, active in self.screen.active_bindings.items()
            if active.binding.show or key in ours
            if (description := active.binding.description)
        ]
        self.push_screen(HelpScreen(keys))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        report_failure(self, event.worker, event.state)


def _declared_keys(*nodes: object) -> set[str]:
    """Keys bound by the `tui` classes of `nodes` (and their `tui` base classes)."""
    return {
        binding.key
        for node in nodes
        for cls in type(node).__mro__
        if cls.__module__.startswith("tui.")
        for binding in cls.__dict__.get("BINDINGS", ())
        if isinstance(binding, Binding)
    }
