"""The deployments screen: each endpoint of the current workspace with the model version it
serves, who put it there (the actor of its last deploy or rollback), its runtime options, what
the server holds of it (resident: loaded, loading or cold; the memory it takes, and the budget
under the table) and the last hour of traffic (predictions, p50/p95 latency and a throughput
sparkline), refreshed every few seconds.

Keys change what is served, through the server: `n` deploys a model version to an endpoint (the
highlighted one prefilled), `z` redeploys the highlighted endpoint's version with other runtime
options (quantization, device), `b` rolls the highlighted endpoint back after a confirmation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Header, Static

from appliance.errors import ApplianceError
from appliance.monitoring import report
from appliance.plots import sparkline
from tui import figures
from tui.screens.base import ApplianceScreen
from tui.screens.confirm import ConfirmScreen
from tui.screens.deploy_form import DeployFormScreen, DeployRequest, model_choices
from tui.tables import fill, key_at_cursor

if TYPE_CHECKING:
    from appliance.server.client import ServerClient

WINDOW_S = 3600
SPARK_WIDTH = 12
NO_SERVER = "start `appliance up` with its server to deploy"


@dataclass(frozen=True)
class Snapshot:
    workspace: str | None
    deployments: list[dict[str, Any]]
    traffic: dict[str, dict[str, Any]]  # endpoint → report.summary figures
    actors: dict[str, str] = field(default_factory=dict)  # endpoint → who last deployed it
    served: dict[str, dict[str, Any]] = field(default_factory=dict)  # the server's Deployment


class DeploymentsScreen(ApplianceScreen):
    REFRESH_S = 5.0
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "deploy", "Deploy"),
        Binding("z", "requantize", "Quantize"),
        Binding("b", "rollback", "Roll back"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._deployments: dict[str, dict[str, Any]] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Loading deployments…", id="empty", classes="empty")
        table: DataTable[str] = DataTable(id="deployments", cursor_type="row", zebra_stripes=True)
        table.add_column("endpoint", key="endpoint")
        table.add_column("model", key="model")
        table.add_column("by", key="actor")
        table.add_column("quant", key="quantization")
        table.add_column("device", key="device")
        table.add_column("resident", key="resident")
        table.add_column("memory", key="memory")
        table.add_column("preds/1h", key="predictions")
        table.add_column("p50", key="p50")
        table.add_column("p95", key="p95")
        table.add_column("throughput", key="throughput", width=SPARK_WIDTH)
        yield table
        yield Static("", id="memory-budget")
        yield Footer()

    def reload(self) -> None:
        self._load(self.workspace)

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def _load(self, workspace: str | None) -> None:
        if workspace is None:
            self.deliver(self._show, Snapshot(None, [], {}))
            return
        deployments = self.services.deployments.list(workspace)
        traffic, actors = {}, {}
        if deployments:
            summary = report.summary(self.services, workspace, window_s=WINDOW_S)
            traffic = {e["endpoint"]: e for e in summary["endpoints"]}
            ws_id = deployments[0]["workspace_id"]
            latest = self.services.events.latest(ws_id, ("deployed", "rolled_back"))
            actors = {endpoint: event["actor"] for endpoint, event in latest.items()}
        served = self._served(workspace) if deployments else {}
        self.deliver(self._show, Snapshot(workspace, deployments, traffic, actors, served))

    def _served(self, workspace: str) -> dict[str, dict[str, Any]]:
        """What the server holds for each endpoint (resident, memory, budget); {} without one."""
        server = self.appliance.server()
        if server is None:
            return {}
        try:
            answer = server.get("/v1/deployments")
        except ApplianceError:  # the server is gone or refused: the table says nothing of it
            return {}
        return {d["endpoint"]: d for d in answer if d["workspace"] == workspace}

    def _show(self, snapshot: Snapshot) -> None:
        self._deployments = {d["endpoint"]: d for d in snapshot.deployments}
        rows = []
        for d in snapshot.deployments:
            recent = snapshot.traffic.get(d["endpoint"])
            served = snapshot.served.get(d["endpoint"], {})
            latency = recent["latency_ms"] if recent else {}
            count = recent["trend"]["count"] if recent else []
            cells = (
                d["endpoint"],
                f"{d['model']}@v{d['version']}",
                snapshot.actors.get(d["endpoint"], figures.DASH),
                d["quantization"],
                d["device"],
                served.get("resident", figures.DASH),
                _megabytes(served.get("memory_mb")),
                figures.number(recent["predictions"] if recent else None),
                figures.ms(latency.get("p50")),
                figures.ms(latency.get("p95")),
                sparkline(count, SPARK_WIDTH),
            )
            rows.append((d["endpoint"], cells))
        table = self.query_one("#deployments", DataTable)
        fill(table, rows)
        empty = self.query_one("#empty", Static)
        if snapshot.workspace is None:
            empty.update("No workspace chosen: press w to pick one.")
        else:
            empty.update(f"No deployments in workspace {snapshot.workspace}.")
        empty.display = not snapshot.deployments
        table.display = bool(snapshot.deployments)
        budget = self.query_one("#memory-budget", Static)
        budget.update(_budget_line(list(snapshot.served.values())))
        budget.display = bool(snapshot.served)

    # -- actions: all go through the server ------------------------------------------------

    def _highlighted(self) -> dict[str, Any] | None:
        endpoint = key_at_cursor(self.query_one("#deployments", DataTable))
        return self._deployments.get(endpoint) if endpoint else None

    def _server(self) -> ServerClient | None:
        server = self.appliance.server()
        if server is None:
            self.notify(NO_SERVER, severity="warning")
        elif self.workspace is None:
            self.notify("No workspace chosen: press w to pick one.", severity="warning")
            return None
        return server

    def action_deploy(self) -> None:
        if self._server() is None or self.workspace is None:
            return
        current = self._highlighted()
        if current is None:
            request = DeployRequest("", "")
        else:
            request = DeployRequest(
                current["endpoint"], "", current["quantization"], current["device"]
            )
        self._open_form(self.workspace, "Deploy a model version", request, current)

    def action_requantize(self) -> None:
        if self._server() is None or self.workspace is None:
            return
        current = self._highlighted()
        if current is None:
            self.notify("No deployment highlighted.", severity="warning")
            return
        request = DeployRequest(
            current["endpoint"],
            f"{current['model']}@{current['version']}",
            current["quantization"],
            current["device"],
        )
        self._open_form(self.workspace, f"Change how {current['endpoint']} runs", request, None)

    @work(thread=True, group="form", exit_on_error=False)
    def _open_form(
        self,
        workspace: str,
        title: str,
        request: DeployRequest,
        current: dict[str, Any] | None,
    ) -> None:
        """Read the workspace's models for the form's choices, then open it. Without a model
        already chosen, the newest version of the highlighted endpoint's model is offered."""
        models = self.services.models
        versions = {
            m["name"]: models.versions(workspace, m["name"]) for m in models.list(workspace)
        }
        choices = model_choices(versions)
        if not request.model and current is not None and versions.get(current["model"]):
            newest = versions[current["model"]][-1]["version"]
            request = DeployRequest(
                request.endpoint, f"{current['model']}@{newest}", request.quantization,
                request.device,
            )  # fmt: skip
        self.deliver(self._show_form, (workspace, title, choices, request))

    def _show_form(self, opened: tuple[str, str, list[tuple[str, str]], DeployRequest]) -> None:
        workspace, title, choices, request = opened
        if not choices:
            self.notify(f"No models in workspace {workspace} to deploy.", severity="warning")
            return

        def submitted(result: DeployRequest | None) -> None:
            server = self.appliance.server()
            if result is not None and server is not None:
                self._deploy(server, workspace, result)

        self.app.push_screen(DeployFormScreen(title, choices, request), submitted)

    @work(thread=True, group="write", exit_on_error=False)
    def _deploy(self, server: ServerClient, workspace: str, request: DeployRequest) -> None:
        row = server.post_json("/v1/deployments", request.body(workspace))
        self.deliver(self._changed, _describe(row))

    def action_rollback(self) -> None:
        server = self._server()
        workspace = self.workspace
        if server is None or workspace is None:
            return
        current = self._highlighted()
        if current is None:
            self.notify("No deployment highlighted.", severity="warning")
            return
        endpoint = current["endpoint"]

        def answered(yes: bool | None) -> None:
            if yes:
                self._rollback(server, workspace, endpoint)

        question = (
            f"Roll {endpoint} back from {current['model']}@{current['version']} "
            "to the version it served before?"
        )
        self.app.push_screen(
            ConfirmScreen(f"Roll back {endpoint}?", question, yes="Roll back"), answered
        )

    @work(thread=True, group="write", exit_on_error=False)
    def _rollback(self, server: ServerClient, workspace: str, endpoint: str) -> None:
        path = f"/v1/deployments/{quote(endpoint, safe='')}/rollback"
        row = server.post_json(path, {"workspace": workspace})
        self.deliver(self._changed, f"Rolled back: {_describe(row)}")

    def _changed(self, message: str) -> None:
        self.notify(message)
        self.reload()


def _describe(row: dict[str, Any]) -> str:
    """A deployment row as "captions → colour@2 (none, cpu)"."""
    return (
        f"{row['endpoint']} → {row['model']}@{row['version']}"
        f" ({row['quantization']}, {row['device']})"
    )


def _megabytes(value: float | None) -> str:
    return figures.DASH if value is None else f"{value:,.0f} MB"


def _budget_line(served: list[dict[str, Any]]) -> str:
    """ "resident 52 MB of a 18,079 MB budget" for each budget the endpoints count against."""
    parts = []
    for budget in sorted({d["memory_budget_mb"] for d in served if d.get("memory_budget_mb")}):
        used = sum(
            d["memory_mb"] or 0 for d in served
            if d["resident"] == "loaded" and d["memory_budget_mb"] == budget
        )  # fmt: skip
        parts.append(f"resident {used:,.0f} MB of a {budget:,.0f} MB budget")
    return " · ".join(parts)
