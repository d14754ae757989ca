"""`appliance run …`"""

from __future__ import annotations

from pathlib import Path

import click

from appliance.cli.context import json_option, services
from appliance.cli.output import emit_json, emit_record, emit_table
from appliance.errors import ApplianceError


@click.group()
def run() -> None:
    """Start, watch, list and cancel runs (executions of a recipe, or runs logged from Python)."""


@run.command()
@click.argument("workspace")
@click.option("--recipe", required=True, help="A built-in recipe or one added to the workspace.")
@click.option("--dataset", required=True, help="NAME or NAME@VERSION of the training data.")
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="A recipe parameter (see `appliance recipe show`); repeatable.",
)
@click.option("--model", "model_name", help="Register the version under this model name.")
@click.option("--detach", is_flag=True, help="Return once the run has started.")
@json_option
def start(
    workspace: str,
    recipe: str,
    dataset: str,
    params: tuple[str, ...],
    model_name: str | None,
    detach: bool,
    as_json: bool,
) -> None:
    """Run a recipe in a child process: train, evaluate on held-out rows, register a version.

    Shows live progress; Ctrl-C cancels the run cleanly.
    """
    from appliance.cli.progress import ProgressLine
    from appliance.recipes.spec import parse_overrides
    from appliance.runs.launcher import start_run, wait_run

    svc = services()
    launch = start_run(svc, workspace, recipe, dataset, parse_overrides(params), model_name)
    if not as_json:
        click.echo(f"run {launch.run_id} started; log: {svc.runs.get(launch.run_id)['log_path']}")
    if detach:
        emit_json(svc.runs.get(launch.run_id)) if as_json else None
        return
    bar = ProgressLine(svc.runs)
    final = wait_run(svc, launch, (lambda run: None) if as_json else bar.update)
    bar.close()
    version = svc.models.by_run(final["id"])
    if as_json:
        emit_json({**final, "model_version": version})
    elif final["status"] == "succeeded" and version:
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in sorted(version["metrics"].items()))
        click.echo(
            f"run {final['id']} succeeded: registered {version['name']}@{version['version']}"
        )
        click.echo(f"  {metrics}")
    if final["status"] != "succeeded":
        raise ApplianceError(f"run {final['id']} {final['status']}: {final['error']}")


@run.command("list")
@click.argument("workspace")
@click.option("--status", help="Only runs with this status (queued, running, succeeded, …).")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@json_option
def list_(workspace: str, status: str | None, limit: int, as_json: bool) -> None:
    """List the newest runs of WORKSPACE."""
    from appliance.runs.launcher import reap_runs

    reap_runs(services())
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
    from appliance.runs.launcher import reap_runs

    runs = services().runs
    record = reap_runs(services(), run_id) or runs.get(run_id)
    record.pop("progress", None)
    record["metrics"] = runs.latest_metrics(run_id)
    record["artifacts"] = [a["path"] for a in runs.artifacts(run_id)]
    emit_json(record) if as_json else emit_record(record)


@run.command()
@click.argument("run_id")
@click.option("--tail", "lines", type=int, default=0, help="Only the last N lines.")
def logs(run_id: str, lines: int) -> None:
    """Print the run's log (the child process's output)."""
    record = services().runs.get(run_id)
    if not record["log_path"] or not Path(record["log_path"]).is_file():
        raise ApplianceError(f"run {run_id} has no log (it was logged from Python, not started)")
    text = Path(record["log_path"]).read_text(errors="replace").splitlines()
    click.echo("\n".join(text[-lines:] if lines else text))


@run.command()
@click.argument("run_id")
def cancel(run_id: str) -> None:
    """Cancel a queued or running run."""
    from appliance.runs.launcher import cancel_run

    final = cancel_run(services(), run_id)
    click.echo(f"run {run_id} {final['status']}")
