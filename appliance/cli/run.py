"""`appliance run …`"""

from __future__ import annotations

import click

from appliance.cli.context import json_option, services
from appliance.cli.output import emit_json, emit_record, emit_table


@click.group()
def run() -> None:
    """List and inspect runs (executions of a recipe, or runs logged from Python)."""


@run.command("list")
@click.argument("workspace")
@click.option("--status", help="Only runs with this status (queued, running, succeeded, …).")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@json_option
def list_(workspace: str, status: str | None, limit: int, as_json: bool) -> None:
    """List the newest runs of WORKSPACE."""
    rows = services().runs.list(workspace, status=status, limit=limit)
    if as_json:
        emit_json(rows)
    else:
        emit_table(rows, ("id", "recipe", "name", "status", "created_at", "ended_at"))


@run.command()
@click.argument("run_id")
@json_option
def show(run_id: str, as_json: bool) -> None:
    """Show a run: status, params, lineage, latest metrics and artifacts."""
    runs = services().runs
    record = runs.get(run_id)
    record["metrics"] = runs.latest_metrics(run_id)
    record["artifacts"] = [a["path"] for a in runs.artifacts(run_id)]
    emit_json(record) if as_json else emit_record(record)
