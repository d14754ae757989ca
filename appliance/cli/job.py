"""`appliance job …`: scheduled and triggered work kept as registry rows. Adding, pausing and
removing only write rows (the scheduler re-reads them); `run-now` and `approve` go through the
running server when there is one, as `appliance deploy` does, and run here otherwise."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import click

from appliance.cli.context import json_option, services, without_server
from appliance.cli.deploy import _via_server
from appliance.cli.output import emit_json, emit_record, emit_table
from appliance.errors import ApplianceError, InvalidInput, NotFound

KINDS_HELP = "retrain, dataset_watch, alert_trigger, batch_predict, housekeeping or backup"


@click.group()
def job() -> None:
    """Scheduled and triggered work: retraining, dataset watches, alert triggers, batch
    predictions, housekeeping, backups."""


@job.command()
@click.argument("workspace")
@click.argument("name")
@click.option("--kind", required=True, help=f"What the job does: {KINDS_HELP}.")
@click.option("--every", metavar="N[s|m|h|d]", help="Run at this interval, e.g. 10m or 1d.")
@click.option("--cron", metavar="'MIN HOUR DAY MONTH WEEKDAY'", help="Run on a cron schedule.")
@click.option(
    "--target",
    default="",
    help="What the job acts on: retrain → model, dataset_watch → dataset, alert_trigger and "
    "batch_predict → endpoint; housekeeping and backup have none.",
)
@click.option(
    "--param", "params", multiple=True, metavar="KEY=VALUE",
    help="Any parameter; VALUE is read as JSON when it parses, else as text. Repeatable. "
    "E.g. train='{\"epochs\": 3}' (retrain: the recipe's params).",
)  # fmt: skip
@click.option("--recipe", help="retrain: the recipe to run.")
@click.option("--dataset", help="retrain: the training data, NAME or NAME@VERSION.")
@click.option("--endpoint", help="retrain: the endpoint to deploy the new version at.")
@click.option(
    "--policy",
    type=click.Choice(("auto", "approve")),
    help="retrain: deploy a version that passes its gate at once (auto, the default) or wait "
    "for `appliance job approve` (approve).",
)
@click.option(
    "--source",
    help="dataset_watch: the folder to watch; batch_predict: the inputs (a metadata.jsonl there"
    " gives each photo its row's keywords).",
)
@click.option(
    "--output",
    help="batch_predict: where the predictions are written; backup: the folder the archives go "
    "to (default <home>/backups; keep N of them with --param keep=N, default 7).",
)
@click.option(
    "--retrain", metavar="JOBNAME", help="dataset_watch, alert_trigger: the retrain job to start."
)
@click.option(
    "--watch",
    metavar="N[s|m|h|d]",
    help="retrain: how long to watch the endpoint after deploying; it rolls back if it does worse.",
)
@click.option(
    "--executor",
    type=click.Choice(("local", "ray")),
    help="retrain: where the run trains (local, the default, or ray: a Ray cluster).",
)
@click.option(
    "--ray-address",
    metavar="HOST:PORT",
    help="retrain with --executor ray: the cluster (default the server's RAY_ADDRESS).",
)
def add(
    workspace: str, name: str, kind: str, every: str | None, cron: str | None, target: str,
    params: tuple[str, ...], recipe: str | None, dataset: str | None, endpoint: str | None,
    policy: str | None, source: str | None, output: str | None, retrain: str | None,
    watch: str | None, executor: str | None, ray_address: str | None,
) -> None:  # fmt: skip
    """Add job NAME to WORKSPACE, triggered by --every or --cron (exactly one).

    \b
    appliance job add ads nightly --kind retrain --target captioner \\
        --recipe colour --dataset photos --endpoint captions --cron "0 3 * * *"
    """
    from appliance.scheduler.jobs import describe_trigger, parse_trigger

    if (every is None) == (cron is None):
        raise click.UsageError("give exactly one of --every and --cron")
    if every is not None:
        value = every.strip()
        trigger = parse_trigger(value if value.startswith("every ") else f"every {value}")
    else:
        trigger = parse_trigger(f"cron {cron}")
    values = _parse_params(params)
    named = {
        "recipe": recipe, "dataset": dataset, "endpoint": endpoint, "policy": policy,
        "source": source, "output": output, "retrain": retrain,
        "watch_s": None if watch is None else _seconds(watch, "--watch"),
        "executor": executor, "ray_address": ray_address,
    }  # fmt: skip
    for key, given in named.items():
        if given is None:
            continue
        if key in values:
            raise click.UsageError(f"{key} is given both as an option and as --param")
        values[key] = given
    row = services().jobs.add(workspace, name, kind, trigger, target, values)
    on = f" on {row['target']}" if row["target"] else ""
    click.echo(f"job {name} added: {kind}{on}, {describe_trigger(row['trigger'])}")


@job.command("list")
@click.argument("workspace")
@json_option
def list_(workspace: str, as_json: bool) -> None:
    """List the jobs of WORKSPACE with their trigger and last run."""
    from appliance.scheduler.jobs import describe_trigger

    rows = services().jobs.list(workspace)
    if as_json:
        emit_json(rows)
        return
    shown = [{**r, "trigger": describe_trigger(r["trigger"])} for r in rows]
    columns = ("name", "kind", "target", "trigger", "enabled", "last_run_at", "last_status")
    emit_table(shown, columns)


@job.command()
@click.argument("workspace")
@click.argument("name")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True,
              help="How many of the latest runs to list.")  # fmt: skip
@json_option
def show(workspace: str, name: str, limit: int, as_json: bool) -> None:
    """Show job NAME and its latest runs (what caused each and how it ended)."""
    from appliance.scheduler.jobs import describe_trigger

    jobs = services().jobs
    record = jobs.get(workspace, name)
    runs = jobs.runs(record["id"], limit)
    if as_json:
        emit_json({**record, "runs": runs})
        return
    emit_record({**record, "trigger": describe_trigger(record["trigger"])})
    click.echo()
    click.echo("runs:")
    emit_table(
        [{**r, "detail": _summary(r["detail"])} for r in runs],
        ("id", "started_at", "cause", "status", "run_id", "detail"),
    )


@job.command()
@click.argument("workspace")
@click.argument("name")
def pause(workspace: str, name: str) -> None:
    """Stop triggering job NAME until it is resumed."""
    services().jobs.set_enabled(workspace, name, False)
    click.echo(f"job {name} paused")


@job.command()
@click.argument("workspace")
@click.argument("name")
def resume(workspace: str, name: str) -> None:
    """Trigger job NAME again."""
    from appliance.scheduler.jobs import describe_trigger

    row = services().jobs.set_enabled(workspace, name, True)
    click.echo(f"job {name} resumed: {describe_trigger(row['trigger'])}")


@job.command()
@click.argument("workspace")
@click.argument("name")
def remove(workspace: str, name: str) -> None:
    """Remove job NAME and the record of its runs."""
    services().jobs.remove(workspace, name)
    click.echo(f"job {name} removed")


@job.command("run-now")
@click.argument("workspace")
@click.argument("name")
def run_now(workspace: str, name: str) -> None:
    """Run job NAME once now: in the running server when there is one, otherwise here until
    it ends."""
    svc = services()
    record = svc.jobs.get(workspace, name)
    answer = _via_server(f"/v1/workspaces/{workspace}/jobs/{name}/run", {})
    if answer is not None:
        click.echo(
            f"started in the server: job run {answer['job_run']}; "
            f"follow with `appliance job show {workspace} {name}`"
        )
        return
    from appliance.scheduler.runner import run_job

    with without_server("job run-now"):
        click.echo(f"no server is running: running job {name} here…", err=True)
        row = run_job(svc, record, "manual")
    line = f"job run {row['id']} {row['status']}: {_summary(row['detail'], 200)}"
    if row["status"] == "failed":
        raise ApplianceError(line)
    click.echo(line)


@job.command()
@click.argument("workspace")
@click.argument("job_run_id")
def approve(workspace: str, job_run_id: str) -> None:
    """Deploy the version that job run JOB_RUN_ID is holding for approval."""
    svc = services()
    if not any(r["id"] == job_run_id for r in svc.jobs.awaiting_approval(workspace)):
        raise NotFound(f"no job run {job_run_id} awaits approval in workspace '{workspace}'")
    row = _via_server(f"/v1/job-runs/{job_run_id}/approve", {})
    where = "the running server deployed it"
    if row is None:
        from appliance.scheduler.runner import approve as approve_here

        with without_server("job approve"):
            row = approve_here(svc, job_run_id)
        where = "deployed here; `appliance serve` will serve it"
    line = f"job run {job_run_id} {row['status']}: {_deployed(row['detail'])} ({where})"
    if row["status"] == "failed":
        raise ApplianceError(line)
    click.echo(line)


@job.command()
@click.argument("workspace")
@json_option
def pending(workspace: str, as_json: bool) -> None:
    """List the job runs of WORKSPACE whose new version awaits `appliance job approve`."""
    rows = services().jobs.awaiting_approval(workspace)
    if as_json:
        emit_json(rows)
    else:
        shown = [{**r, "detail": _summary(r["detail"])} for r in rows]
        emit_table(shown, ("id", "job", "started_at", "run_id", "detail"))


def _parse_params(pairs: tuple[str, ...]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"'{pair}' is not KEY=VALUE", param_hint="--param")
        try:
            values[key.strip()] = json.loads(text)
        except ValueError:
            values[key.strip()] = text
    return values


def _seconds(text: str, option: str) -> int:
    from appliance.scheduler.jobs import parse_trigger

    value = text.strip()
    try:
        trigger = parse_trigger(value if value.startswith("every ") else f"every {value}")
    except InvalidInput:
        trigger = {}
    if "interval_s" not in trigger:
        raise InvalidInput(f"{option} '{text}' is not a duration like 90s, 5m, 1h or 1d")
    return int(trigger["interval_s"])


def _summary(detail: Mapping[str, Any], width: int = 60) -> str:
    text = "; ".join(f"{k}={v}" for k, v in detail.items()) or "-"
    return text if len(text) <= width else text[: width - 1] + "…"


def _deployed(detail: Mapping[str, Any]) -> str:
    """What the approval deployed, as the job run's detail records it."""
    ref, endpoint = detail.get("version_ref"), detail.get("endpoint")
    if not (ref and detail.get("deployed")):
        return _summary(detail, 200)
    text = f"deployed {ref} at {endpoint}"
    return text + ", then rolled back" if detail.get("rolled_back") else text
