"""What every main screen shares: typed access to the app's services and current workspace,
reloading when it is shown or the workspace changes (and every `REFRESH_S` while shown), and
worker failures turned into notifications.

Screens read the registry only in thread workers (SQLite reads block); a worker hands its
result to the screen with `deliver`, which runs the display code on the event loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar, TypeVar, cast

from textual.binding import Binding
from textual.screen import Screen
from textual.timer import Timer
from textual.worker import Worker, get_current_worker

from appliance.services import Services
from tui.errors import report_failure

if TYPE_CHECKING:
    from tui.app import ApplianceApp

T = TypeVar("T")


class ApplianceScreen(Screen[None]):
    BINDINGS = [Binding("r", "reload", "Reload", show=False)]
    REFRESH_S: ClassVar[float | None] = None
    """Seconds between reloads while the screen is shown; None reloads only on demand."""

    _timer: Timer | None = None

    @property
    def appliance(self) -> ApplianceApp:
        return cast("ApplianceApp", self.app)

    @property
    def services(self) -> Services:
        return self.appliance.services

    @property
    def workspace(self) -> str | None:
        return self.appliance.workspace

    def reload(self) -> None:
        """Start a worker that reads what the screen shows and delivers it."""
        raise NotImplementedError

    def action_reload(self) -> None:
        self.reload()

    def deliver(self, show: Callable[[T], object], value: T) -> None:
        """From a thread worker: run `show(value)` on the event loop unless the worker was
        superseded (exclusive workers cannot stop a thread, so a late result is dropped)."""
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(show, value)

    def on_mount(self) -> None:
        self.watch(self.app, "workspace", self._workspace_changed, init=False)

    def on_screen_resume(self) -> None:
        self.reload()
        if self.REFRESH_S is None:
            return
        if self._timer is None:
            self._timer = self.set_interval(self.REFRESH_S, self.reload)
        else:
            self._timer.resume()

    def on_screen_suspend(self) -> None:
        if self._timer is not None:
            self._timer.pause()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        report_failure(self, event.worker, event.state)

    def _workspace_changed(self) -> None:
        if self.is_current:
            self.reload()
