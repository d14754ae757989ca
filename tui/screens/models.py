"""The models screen: the current workspace's models, and for the highlighted one its versions
side by side (aliases, metrics as columns with the recipe's gate metric first, the dataset
version and run they came from); below them, what the highlighted version is (task, runtime,
architecture, parameters, weight size: the CLI's `model show` wording), its calibration and the
quantization modes its register check found it serves in. `p` promotes the highlighted version
to production after a confirmation: the evaluation gate runs in a worker (it may load the
models, so torch only ever loads there) and its numbers come back as a notification, whether it
moved the alias or
refused a worse candidate."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from appliance.errors import ApplianceError, NotFound
from appliance.models.describe import calibration_lines, describe, quantization
from appliance.trust.store import summary as trust_summary
from tui import figures
from tui.screens.base import ApplianceScreen
from tui.screens.confirm import ConfirmScreen
from tui.tables import fill, key_at_cursor

PRODUCTION = "production"
METRIC_COLUMNS = 4  # at most this many metrics, so the table fits at 80 columns
MODEL_COLUMNS = ("model", "versions", "latest", PRODUCTION)
LEAD_COLUMNS = ("version", "aliases")
TRAIL_COLUMNS = ("dataset", "run", "created")


@dataclass(frozen=True)
class Versions:
    model: str
    rows: list[dict[str, Any]]
    datasets: dict[str, str]  # version id → "dataset@version" it was trained on
    gates: list[str]  # the gate metrics of the recipes behind the versions, the newest's first


class ModelsScreen(ApplianceScreen):
    REFRESH_S = 5.0
    BINDINGS = [
        Binding("p", "promote", "Promote"),
    ]
    CSS = """
    ModelsScreen #models {
        height: auto;
        max-height: 7;
    }
    ModelsScreen #versions-title {
        padding: 1 1 0 1;
        text-style: bold;
    }
    ModelsScreen #versions {
        height: 1fr;
    }
    ModelsScreen #version-detail {
        height: auto;
        padding: 0 1;
    }
    """

    def __init__(self) -> None:
        super().__init__()
        self._model: str | None = None  # the model whose versions are shown
        self._versions: dict[str, dict[str, Any]] = {}  # version id → row
        self._lineage: dict[str, str] = {}  # version id → "dataset@version" (never changes)
        self._gate_metric: dict[str, str | None] = {}  # recipe → its gate metric

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Loading models…", id="empty", classes="empty")
        models: DataTable[str] = DataTable(id="models", cursor_type="row", zebra_stripes=True)
        for label in MODEL_COLUMNS:
            models.add_column(label, key=label)
        yield models
        yield Static("", id="versions-title")
        versions: DataTable[str] = DataTable(id="versions", cursor_type="row", zebra_stripes=True)
        yield versions
        yield Static("", id="version-detail")
        yield Footer()

    def reload(self) -> None:
        self._load(self.workspace)
        if self._model is not None:
            self._load_versions(self._model)

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def _load(self, workspace: str | None) -> None:
        if workspace is None:
            self.deliver(self._show, (None, []))
            return
        models = self.services.models.list(workspace)
        for model in models:
            model["holder"] = self.services.models.aliases(workspace, model["name"]).get(PRODUCTION)
        self.deliver(self._show, (workspace, models))

    def _show(self, loaded: tuple[str | None, list[dict[str, Any]]]) -> None:
        workspace, models = loaded
        table = self.query_one("#models", DataTable)
        fill(
            table,
            [
                (
                    m["name"],
                    (
                        m["name"],
                        str(m["versions"]),
                        _version(m["latest_version"]),
                        _version(m["holder"]),
                    ),
                )
                for m in models
            ],
        )
        empty = self.query_one("#empty", Static)
        if workspace is None:
            empty.update("No workspace chosen: press w to pick one.")
        else:
            empty.update(f"No models in workspace {workspace} yet: a succeeded run registers one.")
        empty.display = not models
        for selector in ("#models", "#versions-title", "#versions", "#version-detail"):
            self.query_one(selector).display = bool(models)
        highlighted = key_at_cursor(table)
        if highlighted != self._model:
            self._choose(highlighted)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "versions":
            event.stop()
            self._show_detail(event.row_key.value)
            return
        if event.data_table.id != "models":
            return
        event.stop()
        if event.row_key.value != self._model:
            self._choose(event.row_key.value)

    def _choose(self, model: str | None) -> None:
        self._model = model
        if model is None:
            self._versions = {}
            self.query_one("#versions", DataTable).clear(columns=True)
            self._show_detail(None)
            return
        self._load_versions(model)

    @work(thread=True, exclusive=True, group="versions", exit_on_error=False)
    def _load_versions(self, model: str) -> None:
        workspace = self.workspace
        if workspace is None:
            return
        rows = self.services.models.versions(workspace, model)
        for row in rows:
            if row["id"] not in self._lineage:
                self._lineage[row["id"]] = self._dataset_of(row)
            row["trust"] = trust_summary(self.services.registry, row["id"])
        datasets = {row["id"]: self._lineage[row["id"]] for row in rows}
        recipes = dict.fromkeys(row["recipe"] for row in reversed(rows) if row.get("recipe"))
        gates = [gate for recipe in recipes if (gate := self._gate(workspace, recipe))]
        self.deliver(self._show_versions, Versions(model, rows, datasets, gates))

    def _gate(self, workspace: str, recipe: str) -> str | None:
        if recipe not in self._gate_metric:
            try:
                self._gate_metric[recipe] = self.services.recipes.get(workspace, recipe).gate.metric
            except ApplianceError:  # the recipe is gone: its metrics stay in name order
                self._gate_metric[recipe] = None
        return self._gate_metric[recipe]

    def _dataset_of(self, version: dict[str, Any]) -> str:
        if not version["dataset_id"] or not version["dataset_digest"]:
            return figures.DASH
        try:
            found = self.services.datasets.by_digest(
                version["dataset_id"], version["dataset_digest"]
            )
        except NotFound:  # the dataset version was deleted since
            return f"{version['dataset_digest'][:12]} (gone)"
        return f"{found['name']}@{found['version']}"

    def _show_versions(self, versions: Versions) -> None:
        if versions.model != self._model:
            return  # another model was highlighted meanwhile
        self._versions = {row["id"]: row for row in versions.rows}
        metrics = metric_columns(versions.rows, versions.gates)
        columns = [*LEAD_COLUMNS, *metrics, *TRAIL_COLUMNS]
        table = self.query_one("#versions", DataTable)
        if [str(key.value) for key in table.columns] != columns:
            table.clear(columns=True)
            for label in columns:
                table.add_column(label, key=label)
        rows = [
            (
                row["id"],
                (
                    f"v{row['version']}",
                    ", ".join(row["aliases"]) or figures.DASH,
                    *(figures.number(row["metrics"].get(key), 3) for key in metrics),
                    versions.datasets.get(row["id"], figures.DASH),
                    row["run_id"] or figures.DASH,
                    figures.moment(row["created_at"]),
                ),
            )
            for row in reversed(versions.rows)  # the newest first
        ]
        fill(table, rows)
        self.query_one("#versions-title", Static).update(
            f"Versions of {versions.model} (p promotes the highlighted one to {PRODUCTION})"
        )
        self._show_detail(key_at_cursor(table))

    def _show_detail(self, key: str | None) -> None:
        """What the highlighted version is, and the quantization modes it was checked in."""
        version = self._versions.get(key) if key else None
        self.query_one("#version-detail", Static).update(
            "" if version is None else version_detail(version)
        )

    def action_promote(self) -> None:
        key = key_at_cursor(self.query_one("#versions", DataTable))
        version = self._versions.get(key) if key else None
        workspace = self.workspace
        if version is None or workspace is None:
            return
        name, number = version["name"], version["version"]
        ref = f"{name}@{number}"
        if PRODUCTION in version["aliases"]:
            self.notify(f"{ref} is already {PRODUCTION}.")
            return
        holder = next(
            (v["version"] for v in self._versions.values() if PRODUCTION in v["aliases"]), None
        )
        body = (
            f"The gate first evaluates {ref} and {name}@{holder} (now {PRODUCTION}) on the "
            "same held-out rows; a worse candidate is refused."
            if holder is not None
            else f"No version holds {PRODUCTION} yet, so the alias moves to {ref} at once."
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self.notify(f"Promoting {ref}: evaluating…")
                self._promote(workspace, ref)

        self.app.push_screen(ConfirmScreen(f"Promote {ref} to {PRODUCTION}?", body), answered)

    @work(thread=True, group="write", exit_on_error=False)
    def _promote(self, workspace: str, ref: str) -> None:
        # Evaluating versions may import torch: only here, in a worker, when the user asks.
        from appliance.models.promotion import GateRefused, promote

        try:
            result = promote(self.services, workspace, ref, PRODUCTION)
        except GateRefused as refused:
            self.deliver(self._refused, str(refused))
            return
        self.deliver(self._promoted, f"{ref} is now {PRODUCTION}: {result.summary()}")

    def _promoted(self, message: str) -> None:
        self.notify(message, title="Promoted")
        self.reload()

    def _refused(self, message: str) -> None:
        # Forcing past the gate stays a deliberate CLI act; the UI offers no way around it.
        message = message.replace("; pass --force to promote anyway", "")
        self.notify(message, title="Promotion refused", severity="warning", timeout=15)
        self.reload()


def version_detail(version: dict[str, Any]) -> Text:
    """A version: what it is, the quantization modes per device that its register check served
    it in (a version a run registered was not checked), and its calibration with the
    reliability plot (the CLI's `model show` lines)."""
    modes = quantization(version).items()
    checked = "; ".join(f"{device} {', '.join(m) or figures.DASH}" for device, m in modes)
    trust = version.get("trust")
    calibration = (
        calibration_lines(trust) if trust
        else ["calibration: none (appliance model calibrate measures one)"]
    )  # fmt: skip
    return Text(
        f"v{version['version']}: {describe(version)}\n"
        f"Quantization: {checked or 'not checked at register'}\n" + "\n".join(calibration)
    )


def metric_columns(
    rows: list[dict[str, Any]], gates: list[str], limit: int = METRIC_COLUMNS
) -> list[str]:
    """The metrics shown as columns: the gate metrics first (what promotion compares, never cut
    off at 80 columns), then the others by name; `limit` in all."""
    names = {key for row in rows for key in row["metrics"]}
    first = [gate for gate in dict.fromkeys(gates) if gate in names]
    return [*first, *sorted(names - set(first))][:limit]


def _version(number: int | None) -> str:
    return figures.DASH if number is None else f"v{number}"
