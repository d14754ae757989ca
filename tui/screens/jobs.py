"""The jobs screen: the current workspace's scheduled jobs with their trigger and last run, and
under them the job runs holding a new version for approval. `p` pauses or resumes the
highlighted job through the jobs service (the scheduler re-reads the row); `g` runs it now and
`a` approves the oldest job run awaiting approval, both through the server."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Header, Static

from appliance.scheduler.jobs import describe_trigger, next_run_at
from tui import figures
from tui.screens.base import ApplianceScreen
from tui.tables import fill, key_at_cursor

if TYPE_CHECKING:
    from appliance.server.client import ServerClient

NO_SERVER = "start `appliance up` with its server to {}"
PENDING_SHOWN = 3


@dataclass(frozen=True)
class Snapshot:
    workspace: str | None
    jobs: list[dict[str, Any]] = field(default_factory=list)
    pending: list[dict[str, Any]] = field(default_factory=list)  # awaiting approval, oldest first


class JobsScreen(ApplianceScreen):
    REFRESH_S = 5.0
    DEFAULT_CSS = """
    JobsScreen #approvals {
        height: auto;
        padding: 0 1;
        border-top: solid $warning;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "pause", "Pause"),
        Binding("g", "run_now", "Run now"),
        Binding("a", "approve", "Approve"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._jobs: dict[str, dict[str, Any]] = {}
        self._pending: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Loading jobs…", id="empty", classes="empty")
        table: DataTable[str] = DataTable(id="jobs", cursor_type="row", zebra_stripes=True)
        for label in ("job", "kind", "target", "trigger", "next", "state", "last run", "status"):
            table.add_column(label, key=label)
        yield table
        approvals = Static(id="approvals")
        approvals.display = False
        yield approvals
        yield Footer()

    def reload(self) -> None:
        self._load(self.workspace)

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def _load(self, workspace: str | None) -> None:
        if workspace is None:
            self.deliver(self._show, Snapshot(None))
            return
        jobs = self.services.jobs.list(workspace)
        pending = self.services.jobs.awaiting_approval(workspace)
        self.deliver(self._show, Snapshot(workspace, jobs, pending))

    def _show(self, snapshot: Snapshot) -> None:
        workspace, jobs = snapshot.workspace, snapshot.jobs
        self._jobs = {job["name"]: job for job in jobs}
        self._pending = snapshot.pending
        self._show_pending(snapshot.pending)
        rows = [
            (
                job["name"],
                (
                    job["name"],
                    job["kind"],
                    job["target"] or figures.DASH,
                    describe_trigger(job["trigger"]),
                    _next(job),
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

    def _show_pending(self, pending: list[dict[str, Any]]) -> None:
        """One line per job run awaiting approval (the oldest few): job, version, started."""
        approvals = self.query_one("#approvals", Static)
        approvals.display = bool(pending)
        if not pending:
            return
        lines = [f"{len(pending)} awaiting approval (a approves the oldest):"]
        for row in pending[:PENDING_SHOWN]:
            detail = row["detail"]
            version = detail.get("version_ref") or figures.DASH
            endpoint = f" → {detail['endpoint']}" if detail.get("endpoint") else ""
            lines.append(
                f"  {row['job']}  {version}{endpoint}  started {figures.moment(row['started_at'])}"
            )
        if len(pending) > PENDING_SHOWN:
            lines.append(f"  and {len(pending) - PENDING_SHOWN} more")
        approvals.update("\n".join(lines))

    def _server(self, doing: str) -> ServerClient | None:
        server = self.appliance.server()
        if server is None:
            self.notify(NO_SERVER.format(doing), severity="warning")
        return server

    def action_run_now(self) -> None:
        name = key_at_cursor(self.query_one("#jobs", DataTable))
        workspace = self.workspace
        if name is None or workspace is None:
            return
        server = self._server("run jobs")
        if server is not None:
            self._run_now(server, workspace, name)

    @work(thread=True, group="write", exit_on_error=False)
    def _run_now(self, server: ServerClient, workspace: str, name: str) -> None:
        path = f"/v1/workspaces/{quote(workspace, safe='')}/jobs/{quote(name, safe='')}/run"
        started = server.post_json(path)
        self.deliver(self._done, f"Started job {name}: job run {started['job_run']}")

    def action_approve(self) -> None:
        if not self._pending:
            self.notify("No job run is awaiting approval.")
            return
        server = self._server("approve")
        if server is not None:
            oldest = self._pending[0]
            self._approve(server, oldest["id"], oldest["job"])

    @work(thread=True, group="write", exit_on_error=False)
    def _approve(self, server: ServerClient, job_run_id: str, job: str) -> None:
        row = server.post_json(f"/v1/job-runs/{quote(job_run_id, safe='')}/approve")
        detail = row.get("detail", {})
        what = detail.get("version_ref", "the held version")
        where = f" → {detail['endpoint']}" if detail.get("endpoint") else ""
        self.deliver(self._done, f"Approved {job}: {what}{where}, job run {row['status']}")

    def _done(self, message: str) -> None:
        self.notify(message)
        self.reload()


def _next(job: dict[str, Any]) -> str:
    when = next_run_at(job)
    return figures.moment(when.isoformat()) if when is not None else figures.DASH
