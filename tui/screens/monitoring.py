"""The monitoring screen: DORA tiles for the workspace, then per endpoint the last hour's figures
with trend sparklines (count, p95 latency, confidence, low-light rate, rating) and its alert
states, firing ones highlighted. Refreshed every few seconds."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.widgets import Footer, Header, Static

from appliance.cli.plots import sparkline
from appliance.monitoring import alerts, report
from tui import figures
from tui.screens.base import ApplianceScreen

WINDOW_S = 3600
SPARK_WIDTH = 24
TILES = ("frequency", "lead", "failure", "restore", "level")


@dataclass(frozen=True)
class Snapshot:
    workspace: str | None
    endpoints: list[dict[str, Any]] = field(default_factory=list)  # report.summary's
    served: dict[str, str] = field(default_factory=dict)  # endpoint → "model@vN"
    alerts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # endpoint → rules
    dora: dict[str, Any] | None = None


class MonitoringScreen(ApplianceScreen):
    REFRESH_S = 5.0

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="dora"):
            for tile in TILES:
                yield Static(id=f"dora-{tile}", classes="tile")
        yield Static("Loading monitoring…", id="empty", classes="empty")
        yield VerticalScroll(id="endpoints")
        yield Footer()

    def reload(self) -> None:
        self._load(self.workspace)

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def _load(self, workspace: str | None) -> None:
        if workspace is None:
            self.deliver(self._show, Snapshot(None))
            return
        services = self.services
        served = {
            d["endpoint"]: f"{d['model']}@v{d['version']}"
            for d in services.deployments.list(workspace)
        }
        states: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in alerts.current(services, workspace):
            states[row["endpoint"]].append(row)
        self.deliver(
            self._show,
            Snapshot(
                workspace,
                report.summary(services, workspace, window_s=WINDOW_S)["endpoints"],
                served,
                dict(states),
                report.dora(services, workspace),
            ),
        )

    def _show(self, snapshot: Snapshot) -> None:
        self._show_dora(snapshot.dora)
        names = [e["endpoint"] for e in snapshot.endpoints]
        served, states = snapshot.served, snapshot.alerts
        blocks = [
            _endpoint_block(e, served.get(e["endpoint"]), states.get(e["endpoint"]))
            for e in snapshot.endpoints
        ] + [
            _endpoint_block(None, served.get(name), rows, name)
            for name, rows in states.items()
            if name not in names
        ]
        box = self.query_one("#endpoints", VerticalScroll)
        shown = list(box.query(".endpoint").results(Static))
        for widget, block in zip(shown, blocks, strict=False):
            widget.update(block)  # update in place so the scroll position holds
        for widget in shown[len(blocks) :]:
            widget.remove()
        if len(blocks) > len(shown):
            box.mount_all(Static(block, classes="endpoint") for block in blocks[len(shown) :])
        empty = self.query_one("#empty", Static)
        if snapshot.workspace is None:
            empty.update("No workspace chosen: press w to pick one.")
        else:
            empty.update(f"No deployments in workspace {snapshot.workspace}: nothing to monitor.")
        empty.display = not blocks
        box.display = bool(blocks)

    def _show_dora(self, dora: dict[str, Any] | None) -> None:
        dora = dora or {}
        frequency = dora.get("deployment_frequency_per_day")
        tiles = {
            "frequency": ("deploys/day", figures.number(frequency, 2)),
            "lead": ("lead time", figures.hours(dora.get("lead_time_hours"))),
            "failure": ("change fail", figures.percent(dora.get("change_failure_rate"))),
            "restore": ("restore", figures.hours(dora.get("time_to_restore_hours"))),
            "level": ("level", dora.get("level") or figures.DASH),
        }
        for tile, (label, value) in tiles.items():
            self.query_one(f"#dora-{tile}", Static).update(
                Content.assemble((label, "$text-muted"), "\n", (value, "bold"))
            )


def _endpoint_block(
    summary: dict[str, Any] | None,
    served: str | None,
    rules: list[dict[str, Any]] | None,
    name: str = "",
) -> Content:
    """One endpoint: a title line, a line per trend, and its alert states."""
    name = summary["endpoint"] if summary else name
    parts: list[str | Content | tuple[str, str]] = [(name, "bold $accent")]
    if served:
        parts.append(f"  {served}")
    if summary:
        errors = summary["errors"]
        parts.append(f"  {figures.number(summary['predictions'])} predictions in the last hour")
        if errors:
            parts.append(
                (f", {errors} errors ({figures.percent(summary['error_rate'])})", "$error")
            )
        trend = summary["trend"]
        ratings = f"{figures.number(summary['mean_rating'], 1)} ({summary['ratings']})"
        lines = (
            ("count", figures.number(summary["predictions"]), trend["count"]),
            ("p95 latency", figures.ms(summary["latency_ms"]["p95"]), trend["p95_latency_ms"]),
            ("confidence", figures.number(summary["mean_confidence"], 2), trend["confidence"]),
            ("low light", figures.percent(summary["low_light_rate"]), trend["low_light_rate"]),
            ("rating", ratings, trend["rating"]),
        )
        for label, value, series in lines:
            parts.append(f"\n  {label:<12} {value:>10}  ")
            parts.append((sparkline(series, SPARK_WIDTH), "$secondary"))
    parts.append("\n  alerts  ")
    parts.extend(_alert_states(rules or []))
    return Content.assemble(*parts)


def _alert_states(rules: list[dict[str, Any]]) -> list[str | Content | tuple[str, str]]:
    if not rules:
        return [("none evaluated yet", "$text-muted")]
    parts: list[str | Content | tuple[str, str]] = []
    for i, rule in enumerate(rules):
        if i:
            parts.append("  ")
        if rule["state"] == "firing":
            value = f"{rule['value']:.3g}" if rule["value"] is not None else figures.DASH
            parts.append(
                (f"▲ {rule['rule']} {value} (limit {rule['threshold']:.3g})", "bold $error")
            )
        else:
            parts.append((f"✓ {rule['rule']}", "$success"))
    return parts
