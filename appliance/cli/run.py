"""`appliance run …`"""

from __future__ import annotations

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
@click.option(
    "--executor",
    type=click.Choice(("local", "ray")),
    default="local",
    show_default=True,
    help="Where it trains: in a child process here, or as a Ray job on a cluster "
    "(needs pip install 'appliance[ray]').",
)
@click.option(
    "--ray-address",
    metavar="HOST:PORT",
    help="--executor ray: the cluster's GCS address (e.g. 127.0.0.1:6379) or ray://HOST:10001; "
    "default RAY_ADDRESS.",
)
@json_option
def start(
    workspace: str,
    recipe: str,
    dataset: str,
    params: tuple[str, ...],
    model_name: str | None,
    detach: bool,
    executor: str,
    ray_address: str | None,
    as_json: bool,
) -> None:
    """Run a recipe in a child process: train, evaluate on held-out rows, register a version.

    Shows live progress; Ctrl-C cancels the run cleanly. With --executor ray the child sends
    the training to a Ray cluster (the dataset's files and the recipe travel with it), streams
    its progress back, and registers the trained folder here.
    """
    from appliance.cli.progress import ProgressLine
    from appliance.recipes.spec import parse_overrides
    from appliance.runs.launcher import start_run

    svc = services()
    overrides = parse_overrides(params)
    execution = start_run(
        svc, workspace, recipe, dataset, overrides, model_name,
        executor=executor, ray_address=ray_address,
    )  # fmt: skip
    if not as_json:
        click.echo(f"run {execution.run_id} started; log: {execution.status()['log_path']}")
    if detach:
        emit_json(execution.status()) if as_json else None
        return
    bar = ProgressLine(svc.runs)
    final = execution.wait(None if as_json else bar.update)
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
    """Print the run's log (the child process's output; a Ray run's task lines too)."""
    from appliance.runs.launcher import Execution

    click.echo(Execution.attach(services(), run_id).logs(lines), nl=False)


@run.command()
@click.argument("run_id")
def cancel(run_id: str) -> None:
    """Cancel a queued or running run."""
    from appliance.runs.launcher import Execution

    final = Execution.attach(services(), run_id).cancel()
    click.echo(f"run {run_id} {final['status']}")
