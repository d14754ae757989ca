"""The runs screen: the current workspace's training runs (status, dataset, timing, a headline
metric), and for the highlighted one its params, a live progress bar, the loss curve and the
tail of its log, all refreshed every second. `n` starts a run through a form, `c` cancels the
highlighted one after a confirmation. Runs whose process died without a word are marked failed
on each refresh, as `appliance run list` does."""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import DataTable, Footer, Header, Static

from appliance.errors import ApplianceError
from appliance.plots import bar, sparkline
from appliance.runs.launcher import Execution, reap_runs
from appliance.runs.tracking import FINISHED
from tui import figures
from tui.screens.base import ApplianceScreen
from tui.screens.confirm import ConfirmScreen
from tui.screens.run_form import RunFormScreen
from tui.tables import fill, key_at_cursor

LOG_LINES = 8
BAR_WIDTH = 30
SPARK_WIDTH = 40
PARAMS_SHOWN = 12
STATUS_STYLES = {"succeeded": "green", "failed": "red", "cancelled": "yellow"}
COLUMNS = ("id", "recipe", "status", "dataset", "started", "took", "metric")


@dataclass(frozen=True)
class Listing:
    workspace: str | None
    runs: list[dict[str, Any]] = field(default_factory=list)
    datasets: dict[str, str] = field(default_factory=dict)  # dataset digest → "name@version"
    headline: dict[str, str] = field(default_factory=dict)  # run id → "metric value"


@dataclass(frozen=True)
class Detail:
    run: dict[str, Any]
    loss: list[float]
    log: list[str]


class RunsScreen(ApplianceScreen):
    REFRESH_S = 1.0
    BINDINGS = [
        Binding("n", "new", "New run"),
        Binding("c", "cancel", "Cancel run"),
    ]
    CSS = """
    RunsScreen #runs {
        height: 1fr;
        min-height: 4;
    }
    RunsScreen #run-detail {
        height: 14;
        border-top: solid $primary-muted;
        padding: 0 1;
    }
    RunsScreen #run-log {
        color: $text-muted;
    }
    """

    def __init__(self) -> None:
        super().__init__()
        self._runs: dict[str, dict[str, Any]] = {}
        self._detail_id: str | None = None  # the run the detail panel shows
        self._detail_finished = False  # …and whether it had finished then (no more refreshes)
        self._launches: dict[str, Execution] = {}  # runs this UI started, reaped when they exit
        self._finished_headline: dict[str, str] = {}  # finished runs' metric never changes
        self._gate_metric: dict[str, str | None] = {}  # recipe → its gate metric

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Loading runs…", id="empty", classes="empty")
        table: DataTable[str] = DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        for label in COLUMNS:
            table.add_column(label, key=label)
        yield table
        with VerticalScroll(id="run-detail"):
            yield Static(id="run-summary")
            yield Static(id="run-log")
        yield Footer()

    def reload(self) -> None:
        self._load(self.workspace)
        if self._detail_id is not None and not self._detail_finished:
            self._load_detail(self._detail_id)

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def _load(self, workspace: str | None) -> None:
        if workspace is None:
            self.deliver(self._show, Listing(None))
            return
        services = self.services
        for run_id, launch in list(self._launches.items()):
            if not launch.alive():  # exited: reaped, no zombie left behind
                self._launches.pop(run_id, None)
        reap_runs(services)
        runs = services.runs.list(workspace)
        datasets = {
            v["digest"]: f"{d['name']}@{v['version']}"
            for d in services.datasets.list(workspace)
            for v in services.datasets.versions(workspace, d["name"])
        }
        headline = {run["id"]: self._headline(workspace, run) for run in runs}
        self.deliver(self._show, Listing(workspace, runs, datasets, headline))

    def _headline(self, workspace: str, run: dict[str, Any]) -> str:
        """The recipe's gate metric once the run finished; meanwhile its latest loss."""
        cached = self._finished_headline.get(run["id"])
        if cached is not None:
            return cached
        runs = self.services.runs
        key = "loss"
        if run["status"] in FINISHED:
            key = self._gate(workspace, run["recipe"]) or key
        value = runs.last_value(run["id"], key)
        if value is None and key != "loss":
            key, value = "loss", runs.last_value(run["id"], "loss")
        text = figures.DASH if value is None else f"{key} {value:.3f}"
        if run["status"] in FINISHED:
            self._finished_headline[run["id"]] = text
        return text

    def _gate(self, workspace: str, recipe: str) -> str | None:
        if recipe not in self._gate_metric:
            try:
                self._gate_metric[recipe] = self.services.recipes.get(workspace, recipe).gate.metric
            except ApplianceError:  # the recipe's folder moved: fall back to the loss
                self._gate_metric[recipe] = None
        return self._gate_metric[recipe]

    def _show(self, listing: Listing) -> None:
        self._runs = {run["id"]: run for run in listing.runs}
        rows = [
            (
                run["id"],
                (
                    run["id"],
                    run["recipe"] or figures.DASH,
                    _status(run["status"]),
                    listing.datasets.get(run["dataset_digest"] or "", figures.DASH),
                    figures.moment(run["started_at"] or run["created_at"]),
                    duration(run),
                    listing.headline.get(run["id"], figures.DASH),
                ),
            )
            for run in listing.runs
        ]
        table = self.query_one("#runs", DataTable)
        fill(table, rows)
        empty = self.query_one("#empty", Static)
        if listing.workspace is None:
            empty.update("No workspace chosen: press w to pick one.")
        else:
            empty.update(f"No runs in workspace {listing.workspace} yet: press n to start one.")
        empty.display = not rows
        table.display = bool(rows)
        self.query_one("#run-detail").display = bool(rows)
        highlighted = key_at_cursor(table)
        if highlighted != self._detail_id:
            self._select(highlighted)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        key = event.row_key.value
        if key != self._detail_id:
            self._select(key)

    def _select(self, run_id: str | None) -> None:
        self._detail_id = run_id
        self._detail_finished = False
        if run_id is None:
            self.query_one("#run-summary", Static).update("")
            self.query_one("#run-log", Static).update("")
        else:
            self._load_detail(run_id)

    @work(thread=True, exclusive=True, group="detail", exit_on_error=False)
    def _load_detail(self, run_id: str) -> None:
        run = self.services.runs.get(run_id)
        loss = [point["value"] for point in self.services.runs.metrics(run_id).get("loss", [])]
        self.deliver(self._show_detail, Detail(run, loss, tail(run.get("log_path"))))

    def _show_detail(self, detail: Detail) -> None:
        run = detail.run
        if run["id"] != self._detail_id:
            return  # the cursor moved on meanwhile
        self._detail_finished = run["status"] in FINISHED
        self.query_one("#run-summary", Static).update(summary(run, detail.loss))
        log = "\n".join(detail.log) if detail.log else "(no log yet)"
        self.query_one("#run-log", Static).update(Content(log))

    def action_new(self) -> None:
        if self.workspace is None:
            self.notify("Choose a workspace first (press w).", severity="warning")
            return
        self.app.push_screen(RunFormScreen(self.services, self.workspace), self._started)

    def _started(self, launch: Execution | None) -> None:
        if launch is None:
            return
        self._launches[launch.run_id] = launch
        self.notify(f"Started run {launch.run_id}")
        self.reload()

    def action_cancel(self) -> None:
        run_id = key_at_cursor(self.query_one("#runs", DataTable))
        run = self._runs.get(run_id) if run_id else None
        if run is None:
            return
        if run["status"] in FINISHED:
            self.notify(f"Run {run['id']} already finished as {run['status']}.")
            return
        question = ConfirmScreen(
            f"Cancel run {run['id']}?",
            f"The {run['recipe']} run stops training now and is recorded as cancelled; "
            "no model version is registered.",
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self.notify(f"Cancelling run {run['id']}…")
                self._cancel(run["id"])

        self.app.push_screen(question, answered)

    @work(thread=True, group="write", exit_on_error=False)
    def _cancel(self, run_id: str) -> None:
        run = Execution(self.services, run_id).cancel()
        self.deliver(self._cancelled, run)

    def _cancelled(self, run: dict[str, Any]) -> None:
        self.notify(f"Run {run['id']} {run['status']}")
        self._detail_finished = False  # show its final state
        self.reload()


def summary(run: dict[str, Any], loss: list[float]) -> Content:
    """The detail panel's head: status, params, progress and the loss curve."""
    head = Content.from_markup(
        "[b]$id[/b] $recipe · $status",
        id=run["id"],
        recipe=run["recipe"] or "run",
        status=run["status"],
    )
    lines = [head]
    if run.get("executor", "local") != "local":
        lines.append(Content(f"trains  {where(run)}"))
    params = sorted((run.get("params") or {}).items())
    shown = " ".join(f"{key}={value}" for key, value in params[:PARAMS_SHOWN])
    more = f" (+{len(params) - PARAMS_SHOWN} more)" if len(params) > PARAMS_SHOWN else ""
    lines.append(Content(f"params  {shown or figures.DASH}{more}"))
    progress = json.loads(run["progress"]) if run.get("progress") else None
    if progress and progress.get("total"):
        step, total = int(progress["step"]), int(progress["total"])
        drawn = bar(step, total, BAR_WIDTH).ljust(BAR_WIDTH, "░")
        lines.append(Content(f"progress {drawn} {step}/{total}"))
    else:
        waiting = "waiting to start" if run["status"] == "queued" else figures.DASH
        lines.append(Content(f"progress {waiting}"))
    if loss:
        trend = sparkline(loss, SPARK_WIDTH)
        lines.append(Content(f"loss    {trend} {loss[0]:.3g} → {loss[-1]:.3g}"))
    else:
        lines.append(Content(f"loss    {figures.DASH}"))
    if run.get("error"):
        lines.append(Content.from_markup("[$error]$text[/]", text=f"error   {run['error']}"))
    return Content("\n").join(lines)


def tail(path: str | None, count: int = LOG_LINES) -> list[str]:
    """The last `count` lines of a run's log; none while it has no log yet."""
    if not path:
        return []
    try:
        with Path(path).open(errors="replace") as log:
            return [line.rstrip("\n") for line in deque(log, maxlen=count)]
    except FileNotFoundError:
        return []


def duration(run: dict[str, Any], now: datetime | None = None) -> str:
    """How long the run took, or has been running: 'm:ss', or 'h:mm:ss' past an hour."""
    if not run.get("started_at"):
        return figures.DASH
    start = _parse(run["started_at"])
    end = _parse(run["ended_at"]) if run.get("ended_at") else (now or datetime.now(UTC))
    seconds = max(0, int((end - start).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _parse(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _status(status: str) -> Text:
    # A rich Text: the table measures its width (a Content cell is cut to the header's).
    return Text(status, style=STATUS_STYLES.get(status, ""))


def where(run: dict[str, Any]) -> str:
    """Where a run that left this machine trains: its Ray cluster, job and worker."""
    ref = run.get("executor_ref") or {}
    text = f"on {run['executor']} at {ref.get('address', '?')}"
    if ref.get("job_id"):
        text += f" · job {ref['job_id']}"
    if ref.get("worker_pid"):
        text += f" · worker pid {ref['worker_pid']} on {ref.get('host', '?')}"
    return text
