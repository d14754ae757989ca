"""The platform screen: the platform team's four figures across every workspace over the last
30 days: adoption (which teams have a model in production and use it), user happiness (platform
ratings with a sparkline of their trend and the latest comments; `!` rates), the capabilities
coverage matrix and cost per user. Refreshed every 30 s."""

from __future__ import annotations

from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import Footer, Header, Static

from appliance.models.describe import human_bytes
from appliance.platform.report import platform_report, window
from appliance.plots import sparkline
from tui import figures
from tui.screens.base import ApplianceScreen

WINDOW_S = 30 * 86_400
YES, NO = "✓", "·"
CAPABILITIES = {
    "dataset_versions": "data", "tracked_runs": "runs", "gate": "gate",
    "quantized_deployment": "quant", "monitoring": "monit", "feedback": "rated",
    "retraining": "retrn", "review_loop": "review",
}  # fmt: skip
NAME_WIDTH = 16


class PlatformScreen(ApplianceScreen):
    REFRESH_S = 30.0
    DEFAULT_CSS = """
    PlatformScreen #figures > Static {
        padding: 0 1;
        margin-bottom: 1;
    }
    """

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="figures"):
            yield Static("Loading platform figures…", id="adoption")
            yield Static(id="happiness")
            yield Static(id="coverage")
            yield Static(id="cost")
        yield Footer()

    def reload(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def _load(self) -> None:
        self.deliver(self._show, platform_report(self.services, *window(WINDOW_S)))

    def _show(self, report: dict[str, Any]) -> None:
        self.query_one("#adoption", Static).update(_adoption(report["adoption"]))
        self.query_one("#happiness", Static).update(_happiness(report["happiness"]))
        self.query_one("#coverage", Static).update(_coverage(report["coverage"]))
        self.query_one("#cost", Static).update(_cost(report["cost"]))


def _title(text: str) -> tuple[str, str]:
    return (text, "bold $accent")


def _adoption(data: dict[str, Any]) -> Content:
    if not data["workspaces"]:
        return Content.assemble(_title("Adoption"), "  no workspaces yet")
    names = ", ".join(data["adopted_workspaces"]) or "none"
    return Content.assemble(
        _title("Adoption"),
        f"  {data['adopted']} of {data['workspaces']} workspaces ({figures.percent(data['rate'])})"
        " in production and active, last 30 days\n",
        (f"  {names}", "bold"),
    )


def _happiness(data: dict[str, Any]) -> Content:
    parts: list[str | tuple[str, str]] = [_title("Happiness")]
    if not data["count"]:
        parts.append("  no platform ratings yet: press ! to rate")
        return Content.assemble(*parts)
    plural = "" if data["count"] == 1 else "s"
    parts.append(f"  {data['count']} rating{plural}, mean {figures.number(data['mean'], 2)} of 5  ")
    parts.append((sparkline([b["mean"] for b in data["trend"]], 30), "$secondary"))
    parts.append(("  ! rates", "$text-muted"))
    for comment in data["latest_comments"][:3]:
        text = comment["comment"].replace("\n", " ")
        text = text if len(text) <= 56 else text[:55] + "…"
        parts.append(f"\n  {comment['rating']}★ {text}")
        parts.append((f" — {comment['user'] or 'someone'}", "$text-muted"))
    return Content.assemble(*parts)


def _coverage(data: dict[str, Any]) -> Content:
    header = "workspace".ljust(NAME_WIDTH) + " ".join(f"{c:>6}" for c in CAPABILITIES.values())
    parts: list[str | tuple[str, str]] = [_title("Coverage"), "\n", (header, "$text-muted")]
    for ws, used in data["matrix"].items():
        parts.append("\n" + _name(ws))
        for key in CAPABILITIES:
            mark = YES if used[key] else NO
            parts.append((f"{mark:>6} ", "$success" if used[key] else "$text-muted"))
    return Content.assemble(*parts)


def _cost(data: dict[str, Any]) -> Content:
    columns = ("cpu-s", "gpu-s", "disk", "cost", "users", "per user")
    header = "workspace".ljust(NAME_WIDTH) + " ".join(f"{c:>9}" for c in columns)
    parts: list[str | tuple[str, str]] = [
        _title("Cost per user"),
        f"  {figures.number(data['per_user'], 4)} per user, {data['users']} users\n",
        (header, "$text-muted"),
    ]
    for row in data["per_workspace"]:
        cells = (
            figures.number(row["cpu_seconds"], 1),
            figures.number(row["gpu_seconds"], 1),
            human_bytes(row["disk_bytes"]["total"]),
            figures.number(row["cost"]["total"], 4),
            str(row["users"]),
            figures.number(row["per_user"], 4),
        )
        parts.append("\n" + _name(row["workspace"]) + " ".join(f"{c:>9}" for c in cells))
    parts.append((f"\n{data['energy']['note']}", "$text-muted"))
    return Content.assemble(*parts)


def _name(text: str) -> str:
    return (text if len(text) < NAME_WIDTH else text[: NAME_WIDTH - 2] + "…").ljust(NAME_WIDTH)
