"""How failures reach the user: a worker's exception becomes one error notification (the
service's own message for errors a user can fix), never a traceback on screen."""

from __future__ import annotations

from typing import Any

from textual.app import App
from textual.widget import Widget
from textual.worker import Worker, WorkerState

from appliance.errors import ApplianceError


def describe(error: BaseException) -> str:
    """The line to show: an `ApplianceError` speaks for itself; anything else is a bug."""
    if isinstance(error, ApplianceError):
        return str(error)
    return f"unexpected {type(error).__name__}: {error} (see the Textual log)"


def report_failure(node: App[Any] | Widget, worker: Worker[object], state: WorkerState) -> None:
    """Notify when `worker` (run with exit_on_error=False) ended in an error."""
    if state is WorkerState.ERROR and worker.error is not None:
        node.log.error(f"worker {worker.name!r} failed", worker.error)
        node.notify(describe(worker.error), title="Error", severity="error")
