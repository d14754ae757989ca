"""The deployments screen: each endpoint of the current workspace with the model version it
serves, its runtime options and the last hour of traffic (predictions, p50/p95 latency and a
throughput sparkline), refreshed every few seconds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.widgets import DataTable, Footer, Header, Static

from appliance.cli.plots import sparkline
from appliance.monitoring import report
from tui import figures
from tui.screens.base import ApplianceScreen
from tui.tables import fill

WINDOW_S = 3600
SPARK_WIDTH = 12


@dataclass(frozen=True)
class Snapshot:
    workspace: str | None
    deployments: list[dict[str, Any]]
    traffic: dict[str, dict[str, Any]]  # endpoint → report.summary figures


class DeploymentsScreen(ApplianceScreen):
    REFRESH_S = 5.0

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Loading deployments…", id="empty", classes="empty")
        table: DataTable[str] = DataTable(id="deployments", cursor_type="row", zebra_stripes=True)
        table.add_column("endpoint", key="endpoint")
        table.add_column("model", key="model")
        table.add_column("quant", key="quantization")
        table.add_column("device", key="device")
        table.add_column("preds/1h", key="predictions")
        table.add_column("p50", key="p50")
        table.add_column("p95", key="p95")
        table.add_column("throughput", key="throughput", width=SPARK_WIDTH)
        yield table
        yield Footer()

    def reload(self) -> None:
        self._load(self.workspace)

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def _load(self, workspace: str | None) -> None:
        if workspace is None:
            self.deliver(self._show, Snapshot(None, [], {}))
            return
        deployments = self.services.deployments.list(workspace)
        traffic = {}
        if deployments:
            summary = report.summary(self.services, workspace, window_s=WINDOW_S)
            traffic = {e["endpoint"]: e for e in summary["endpoints"]}
        self.deliver(self._show, Snapshot(workspace, deployments, traffic))

    def _show(self, snapshot: Snapshot) -> None:
        rows = []
        for d in snapshot.deployments:
            recent = snapshot.traffic.get(d["endpoint"])
            latency = recent["latency_ms"] if recent else {}
            count = recent["trend"]["count"] if recent else []
            cells = (
                d["endpoint"],
                f"{d['model']}@v{d['version']}",
                d["quantization"],
                d["device"],
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
