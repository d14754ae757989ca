"""The jobs screen: the current workspace's scheduled jobs with their trigger and last run;
`p` pauses or resumes the highlighted one through the jobs service."""

from __future__ import annotations

from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from appliance.scheduler.jobs import describe_trigger
from tui import figures
from tui.screens.base import ApplianceScreen
from tui.tables import fill, key_at_cursor


class JobsScreen(ApplianceScreen):
    REFRESH_S = 5.0
    BINDINGS = [
        Binding("p", "pause", "Pause"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._jobs: dict[str, dict[str, Any]] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Loading jobs…", id="empty", classes="empty")
        table: DataTable[str] = DataTable(id="jobs", cursor_type="row", zebra_stripes=True)
        for label in ("job", "kind", "target", "trigger", "state", "last run", "status"):
            table.add_column(label, key=label)
        yield table
        yield Footer()

    def reload(self) -> None:
        self._load(self.workspace)

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def _load(self, workspace: str | None) -> None:
        jobs = self.services.jobs.list(workspace) if workspace else []
        self.deliver(self._show, (workspace, jobs))

    def _show(self, loaded: tuple[str | None, list[dict[str, Any]]]) -> None:
        workspace, jobs = loaded
        self._jobs = {job["name"]: job for job in jobs}
        rows = [
            (
                job["name"],
                (
                    job["name"],
                    job["kind"],
                    job["target"] or figures.DASH,
                    describe_trigger(job["trigger"]),
                    "active" if job["enabled"] else "paused",
                    figures.moment(job["last_run_at"]),
                    job["last_status"] or figures.DASH,
                ),
            )
            for job in jobs
        ]
        table = self.query_one("#jobs", DataTable)
        fill(table, rows)
        empty = self.query_one("#empty", Static)
        if workspace is None:
            empty.update("No workspace chosen: press w to pick one.")
        else:
            empty.update(f"No jobs in workspace {workspace} (add one with `appliance job add`).")
        empty.display = not jobs
        table.display = bool(jobs)

    def action_pause(self) -> None:
        name = key_at_cursor(self.query_one("#jobs", DataTable))
        job = self._jobs.get(name) if name else None
        if job is not None and self.workspace is not None:
            self._set_enabled(self.workspace, job["name"], not job["enabled"])

    @work(thread=True, group="write", exit_on_error=False)
    def _set_enabled(self, workspace: str, name: str, enabled: bool) -> None:
        job = self.services.jobs.set_enabled(workspace, name, enabled)
        self.deliver(self._toggled, job)

    def _toggled(self, job: dict[str, Any]) -> None:
        self.notify(f"{'Resumed' if job['enabled'] else 'Paused'} job {job['name']}")
        self.reload()
