"""`appliance report …`: reports across the platform. `report platform` prints adoption, user
happiness, capabilities coverage and cost per user over every workspace for a window; the
platform modules are imported inside the command (they open the registry)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click

from appliance.cli.context import json_option, services
from appliance.cli.maturity import maturity
from appliance.cli.output import emit_json, emit_table, human_bytes
from appliance.plots import sparkline

YES, NO = "✓", "·"
# Short column names for the coverage matrix, in the report's order.
CAPABILITY_COLUMNS = {
    "dataset_versions": "datasets",
    "tracked_runs": "runs",
    "gate": "gate",
    "quantized_deployment": "quantized",
    "monitoring": "monitoring",
    "feedback": "feedback",
    "retraining": "retraining",
    "review_loop": "review",
}


@click.group()
def report() -> None:
    """Reports across the platform: platform metrics and a workspace's maturity."""


@report.command()
@click.option(
    "--window",
    default="30d",
    show_default=True,
    help="How far back to look: 90s, 30m, 1h, 7d, 2w.",
)
@json_option
def platform(window: str, as_json: bool) -> None:
    """Adoption, user happiness, capabilities coverage and cost per user, across every
    workspace."""
    from appliance.monitoring.predictions import parse_window
    from appliance.platform.report import platform_report
    from appliance.platform.report import window as window_of

    data = platform_report(services(), *window_of(parse_window(window)))
    if as_json:
        emit_json(data)
        return
    click.echo(f"platform · last {window}: {_when(data['since'])} → {_when(data['until'])}")
    _adoption(data["adoption"])
    _happiness(data["happiness"])
    _coverage(data["coverage"])
    _cost(data["cost"])


def _adoption(data: Mapping[str, Any]) -> None:
    click.echo()
    if not data["workspaces"]:
        click.echo("adoption: no workspaces yet")
        return
    names = ", ".join(data["adopted_workspaces"]) or "none"
    click.echo(
        f"adoption: {data['adopted']} of {data['workspaces']} workspaces"
        f" ({data['rate']:.0%}): {names}"
    )
    click.echo(f"  ({data['meaning']})")
    rows = [
        {**row, "production": row["production_endpoints"], "adopted": YES if row["adopted"] else NO}
        for row in data["per_workspace"]
    ]
    emit_table(rows, ["workspace", "production", "predictions", "runs", "events", "adopted"])


def _happiness(data: Mapping[str, Any]) -> None:
    click.echo()
    if not data["count"]:
        click.echo(
            "user happiness: no platform ratings in the window"
            " (give one: appliance feedback platform --rating 1-5)"
        )
        return
    bucket = "day" if data["bucket_s"] % 86_400 == 0 else "hour"
    if data["bucket_s"] not in (3600, 86_400):
        bucket = f"{data['bucket_s'] // 3600} h"
    trend = sparkline([b["mean"] for b in data["trend"]], 30)
    plural = "" if data["count"] == 1 else "s"
    click.echo(
        f"user happiness: {data['count']} rating{plural}, mean {data['mean']:.2f} of 5"
        f"  {trend}  (mean per {bucket}, oldest first)"
    )
    click.echo("  " + "  ".join(f"{n}★ {c}" for n, c in data["histogram"].items()))
    for comment in data["latest_comments"]:
        who = comment["user"] or "someone"
        where = f" for {comment['workspace']}" if comment["workspace"] else ""
        text = comment["comment"].replace("\n", " ")
        text = text if len(text) <= 70 else text[:69] + "…"
        click.echo(f"  {comment['rating']}★ {text} — {who}{where}, {_when(comment['created_at'])}")


def _coverage(data: Mapping[str, Any]) -> None:
    click.echo()
    click.echo(f"capabilities coverage ({YES} uses it, {NO} not yet):")
    rows = [
        {"workspace": ws, **{CAPABILITY_COLUMNS[k]: YES if v else NO for k, v in used.items()},
         "share": f"{data['share'][ws]:.0%}"}
        for ws, used in data["matrix"].items()
    ]  # fmt: skip
    emit_table(rows, ["workspace", *CAPABILITY_COLUMNS.values(), "share"])


def _cost(data: Mapping[str, Any]) -> None:
    click.echo()
    prices = data["prices"]
    click.echo(
        f"cost per user (CPU {prices['cpu_hour']:g}/core-hour, GPU {prices['gpu_hour']:g}/hour,"
        f" disk {prices['gb_month']:g}/GB-month): total {data['total']:.4f},"
        f" {data['users']} users, {_money(data['per_user'])} per user"
    )
    rows = [
        {
            "workspace": row["workspace"],
            "train cpu-s": row["training"]["cpu_seconds"],
            "train gpu-s": row["training"]["gpu_seconds"],
            "serve cpu-s": row["serving"]["cpu_seconds"],
            "serve gpu-s": row["serving"]["gpu_seconds"],
            "disk": human_bytes(row["disk_bytes"]["total"]),
            "cost": _money(row["cost"]["total"]),
            "users": row["users"],
            "per user": _money(row["per_user"]),
        }
        for row in data["per_workspace"]
    ]
    emit_table(rows, list(rows[0]) if rows else ["workspace"])
    walled = sum(row["training"]["runs_by_wall_time"] for row in data["per_workspace"])
    if walled:
        click.echo(f"  {walled} runs recorded no CPU time: their wall time counts instead")
    click.echo(f"  a user: {data['users_meaning']}")
    click.echo(f"  serving: {data['measures']['serving']}")
    click.echo(f"  {data['energy']['note']}")


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _when(text: str) -> str:
    return text[:16].replace("T", " ") + " UTC"


report.add_command(maturity)
