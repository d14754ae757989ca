"""The monitoring screen: DORA tiles for the workspace, and under them its latest changes with
who made them (deploys, rollbacks, promotions, approvals: the DORA `changes`); the machine the
appliance runs on (CPU, memory, disk, GPU when there is one: the latest sample and a sparkline of
the recent ones, from the system metrics the server records); then per endpoint the last hour's
figures with trend sparklines (count, p95 latency, confidence, low-light rate, rating, and the
label-free quality estimate where the version is calibrated), input drift per feature and the
alert states, firing ones highlighted. Refreshed every few seconds."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.widgets import Footer, Header, Static

from appliance.errors import ApplianceError
from appliance.monitoring import alerts, report
from appliance.monitoring.system import SystemMetrics
from appliance.plots import sparkline
from tui import figures
from tui.screens.base import ApplianceScreen

WINDOW_S = 3600
SPARK_WIDTH = 24
TILES = ("frequency", "lead", "failure", "restore", "level")
SYSTEM_SAMPLES = 60
SYSTEM_SPARK = 12
CHANGES_SHOWN = 3
VERBS = {
    "deployed": "deployed", "rolled_back": "rolled back", "promoted": "promoted",
    "deploy_approved": "approved",
}  # fmt: skip


@dataclass(frozen=True)
class Snapshot:
    workspace: str | None
    endpoints: list[dict[str, Any]] = field(default_factory=list)  # report.summary's
    served: dict[str, str] = field(default_factory=dict)  # endpoint → "model@vN"
    alerts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # endpoint → rules
    dora: dict[str, Any] | None = None
    system: list[dict[str, Any]] = field(default_factory=list)  # SystemMetrics.recent, oldest first
    drift: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # endpoint → features


class MonitoringScreen(ApplianceScreen):
    REFRESH_S = 5.0
    DEFAULT_CSS = """
    MonitoringScreen #system {
        height: auto;
        padding: 0 1;
        margin-bottom: 1;
    }
    MonitoringScreen #changes {
        height: auto;
        padding: 0 1;
    }
    """

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="dora"):
            for tile in TILES:
                yield Static(id=f"dora-{tile}", classes="tile")
        changes = Static(id="changes")
        changes.display = False
        yield changes
        system = Static(id="system")
        system.display = False
        yield system
        yield Static("Loading monitoring…", id="empty", classes="empty")
        yield VerticalScroll(id="endpoints")
        yield Footer()

    def reload(self) -> None:
        self._load(self.workspace)

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def _load(self, workspace: str | None) -> None:
        services = self.services
        system = SystemMetrics(services.registry).recent(SYSTEM_SAMPLES)
        if workspace is None:
            self.deliver(self._show, Snapshot(None, system=system))
            return
        served = {
            d["endpoint"]: f"{d['model']}@v{d['version']}"
            for d in services.deployments.list(workspace)
        }
        states: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in alerts.current(services, workspace):
            states[row["endpoint"]].append(row)
        drift = {}
        for endpoint in served:
            try:
                # Features only: the embedding test is the monitor's (its alert state shows).
                found = report.drift(services, workspace, endpoint, WINDOW_S, embeddings=False)
                drift[endpoint] = found["features"]
            except ApplianceError:  # no lineage to profile, or the version is gone: no drift line
                continue
        self.deliver(
            self._show,
            Snapshot(
                workspace,
                report.summary(services, workspace, window_s=WINDOW_S)["endpoints"],
                served,
                dict(states),
                report.dora(services, workspace),
                system,
                drift,
            ),
        )

    def _show(self, snapshot: Snapshot) -> None:
        self._show_dora(snapshot.dora)
        system = self.query_one("#system", Static)
        system.display = bool(snapshot.system)
        if snapshot.system:
            system.update(_system_block(snapshot.system))
        names = [e["endpoint"] for e in snapshot.endpoints]
        served, states = snapshot.served, snapshot.alerts
        blocks = [
            _endpoint_block(
                e,
                served.get(e["endpoint"]),
                states.get(e["endpoint"]),
                drift=snapshot.drift.get(e["endpoint"]),
            )
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
        changes = self.query_one("#changes", Static)
        recent = dora.get("changes") or []
        changes.display = bool(recent)
        if recent:
            changes.update(_changes_line(recent[:CHANGES_SHOWN]))


def _changes_line(changes: list[dict[str, Any]]) -> Content:
    """'changes  ann deployed captions (captioner@2) 14:02 · bob promoted …', newest first."""
    parts: list[str | Content | tuple[str, str]] = [("changes  ", "$text-muted")]
    for n, change in enumerate(changes):
        if n:
            parts.append((" · ", "$text-muted"))
        version = f" ({change['version']})" if change.get("version") else ""
        verb = VERBS.get(change["kind"], change["kind"])
        parts += [
            (change["actor"], "bold"),
            f" {verb} {change['subject']}{version} ",
            (figures.moment(change["at"]), "$text-muted"),
        ]
    return Content.assemble(*parts)


def _endpoint_block(
    summary: dict[str, Any] | None,
    served: str | None,
    rules: list[dict[str, Any]] | None,
    name: str = "",
    drift: list[dict[str, Any]] | None = None,
) -> Content:
    """One endpoint: a title line, a line per trend, keyword adherence where requests gave
    keywords, input drift per feature (PSI against the training data; drifted ones
    highlighted), and its alert states."""
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
        quality = summary["estimated_quality"]
        if quality is not None:
            parts.append(f"\n  {'quality':<12} {figures.number(quality['value'], 2):>10}  ")
            parts.append((sparkline(trend["estimated_quality"], SPARK_WIDTH), "$secondary"))
            interval = f"  [{quality['low']:.2f}-{quality['high']:.2f}]"
            if quality["reference"] is not None:  # the held-out score it is measured against
                interval += f" vs {quality['reference']:.2f}"
            parts.append((interval, "$text-muted"))
            note = _quality_note(quality, summary["uncertain_rate"])
            parts.append((f"\n  {'':<12} {note}", "$text-muted"))
        kept = summary["keywords"]
        if kept["requests"]:  # sellers' keywords: the share the descriptions have
            parts.append(f"\n  {'keywords':<12} {figures.percent(kept['adherence']):>10}  ")
            parts.append(
                (
                    f"{kept['honoured']} of {kept['given']} honoured · {kept['requests']} requests"
                    f" · {kept['ignored_feedback']} said ignored",
                    "$text-muted",
                )
            )
    if drift:
        parts.append("\n  drift (psi)  ")
        for i, feature in enumerate(drift):
            text = f"{feature['feature']} {feature['psi']:.2f}"
            parts.append(" · " if i else "")
            parts.append((text, "bold $error") if feature["drifted"] else text)
    parts.append("\n  alerts  ")
    parts.extend(_alert_states(rules or []))
    return Content.assemble(*parts)


def _quality_note(quality: dict[str, Any], uncertain: float | None) -> str:
    """Under the estimate: what it estimates (against the held-out score), the share of
    ratings of 4-5 and the share of uncertain answers."""
    parts = [f"{quality['metric'] or 'quality'} estimated"]
    if quality["feedback"] is not None:
        parts.append(f"rated {quality['feedback']:.2f} ({quality['rated']})")
    parts.append(f"{figures.percent(uncertain)} uncertain")
    return " · ".join(parts)


def _system_block(samples: list[dict[str, Any]]) -> Content:
    """The machine: a line per resource, each figure its latest value and recent sparkline."""
    latest = samples[-1]

    def series(column: str) -> list[float | None]:
        return [row[column] for row in samples]

    def percent(value: float | None) -> str:
        return figures.DASH if value is None else f"{value:.0f}%"

    lines: list[tuple[str, list[tuple[str, str, str]]]] = [
        ("cpu", [
            ("process", percent(latest["process_cpu_percent"]), "process_cpu_percent"),
            ("machine", percent(latest["machine_cpu_percent"]), "machine_cpu_percent"),
        ]),
        ("memory", [
            ("rss", _bytes(latest["process_rss_bytes"]), "process_rss_bytes"),
            ("machine", percent(latest["machine_memory_percent"]), "machine_memory_percent"),
        ]),
        ("disk", [("used", percent(latest["disk_used_percent"]), "disk_used_percent")]),
    ]  # fmt: skip
    if any(row["gpu_memory_bytes"] is not None for row in samples) or any(
        row["gpu_utilization_percent"] is not None for row in samples
    ):
        lines.append(
            ("gpu", [
                ("memory", _bytes(latest["gpu_memory_bytes"]), "gpu_memory_bytes"),
                ("util", percent(latest["gpu_utilization_percent"]), "gpu_utilization_percent"),
            ])
        )  # fmt: skip
    sampled = figures.moment(latest["sampled_at"])
    parts: list[str | Content | tuple[str, str]] = [
        ("system", "bold $accent"),
        (f"  sampled {sampled}, {len(samples)} recent samples", "$text-muted"),
    ]
    for label, figures_ in lines:
        parts.append(f"\n  {label:<7}")
        for name, value, column in figures_:
            parts.append(f" {name:>7} {value:>7} ")
            parts.append((sparkline(series(column), SYSTEM_SPARK), "$secondary"))
    return Content.assemble(*parts)


def _bytes(value: float | None) -> str:
    """A size in bytes as MB or GB."""
    if value is None:
        return figures.DASH
    if value >= 1024**3:
        return f"{value / 1024**3:.1f} GB"
    return f"{value / 1024**2:.0f} MB"


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
