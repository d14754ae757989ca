"""`appliance model …`"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from appliance.cli.context import json_option, services
from appliance.cli.output import emit_json, emit_table
from appliance.errors import InvalidInput
from appliance.models.describe import calibration_lines, describe, quantization


@click.group()
def model() -> None:
    """Register model versions, list them, move aliases and delete versions."""


@model.command()
@click.argument("workspace")
@click.argument("name")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    metavar="KEY=VALUE",
    help="A metric to record with the version, e.g. exact_match=0.93; repeatable.",
)
@click.option("--description", default="", help="A line about this version.")
@click.option(
    "--recipe", "recipe_name", metavar="RECIPE",
    help="The recipe that trained the folder, whose load() serves it and whose evaluate() "
    "gates it (default: none; the Hugging Face runtime serves it by its config.json).",
)  # fmt: skip
@click.option(
    "--task",
    help="What the model does, where its architecture serves more than one task (default: "
    "read from config.json), e.g. image-to-text for a VLM without prompts.",
)
@json_option
def register(
    workspace: str,
    name: str,
    folder: Path,
    metrics: tuple[str, ...],
    description: str,
    recipe_name: str | None,
    task: str | None,
    as_json: bool,
) -> None:
    """Register FOLDER (a Hugging Face model folder, safetensors only) as the next version.

    The folder is first loaded and asked one input of its task in a child process: a folder
    that cannot serve is refused here, with the reason, never at deploy."""
    from appliance.models.intake import register_folder

    row = register_folder(
        services(), workspace, name, folder, recipe=recipe_name, task=task,
        metrics=_parse_metrics(metrics), description=description,
    )  # fmt: skip
    if as_json:
        emit_json(row)
        return
    click.echo(f"registered {name}@{row['version']}: {describe(row)}")
    for note in row.get("notes", []):
        click.echo(f"note: {note}")
    check = row["info"].get("check")
    if check:
        click.echo(f"checked: loaded and answered one input in {check['seconds']:g} s")


@model.command("list")
@click.argument("workspace")
@json_option
def list_(workspace: str, as_json: bool) -> None:
    """List the models of WORKSPACE."""
    rows = services().models.list(workspace)
    emit_json(rows) if as_json else emit_table(rows, ("name", "versions", "latest_version"))


@model.command()
@click.argument("workspace")
@click.argument("ref", metavar="NAME[@VERSION|@ALIAS]")
@json_option
def show(workspace: str, ref: str, as_json: bool) -> None:
    """Show a model's versions, or one version when a version or alias is given (with its
    calibration: how far its confidence can be believed)."""
    svc = services()
    models = svc.models
    rows = [models.get(workspace, ref)] if "@" in ref else models.versions(workspace, ref)
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        row["what"] = describe(row)
    emit_table(rows, ("version", "aliases", "what", "metrics", "run_id", "created_at"))
    if "@" in ref:
        for device, supported in quantization(rows[0]).items():
            click.echo(f"quantization on {device}: {', '.join(supported)}")
        from appliance.trust.store import summary

        trust = summary(svc.registry, rows[0]["id"])
        for line in (
            calibration_lines(trust)
            if trust
            else ["calibration: none (appliance model calibrate measures one)"]
        ):
            click.echo(line)


@model.command()
@click.argument("workspace")
@click.argument("ref", metavar="NAME@VERSION|NAME@ALIAS")
@click.option(
    "--dataset", help="NAME@VERSION whose held-out rows to calibrate on (default: its own)."
)
@json_option
def calibrate(workspace: str, ref: str, dataset: str | None, as_json: bool) -> None:
    """Measure how far REF's answers can be believed, and store its calibration.

    Its runtime answers the dataset's held-out rows, as they are and under synthetic shifts
    (dark, blurred, noisy, faded photos; texts with typos); the calibration that predicts best
    whether an answer is right is kept, with the uncertain threshold that warns on
    uncertain_target_recall of the wrong answers. A version trained by a run has one already;
    this is for a folder registered by hand. It applies from the version's next deploy."""
    from appliance.models.calibration import calibrate_version

    trust = calibrate_version(services(), workspace, ref, dataset)
    if as_json:
        emit_json(trust)
        return
    for line in calibration_lines(trust):
        click.echo(line)


@model.command()
@click.argument("workspace")
@click.argument("name")
@click.argument("version")
@click.option("--alias", "alias_name", default="production", show_default=True)
@click.option("--force", is_flag=True, help="Promote even if the gate finds it worse.")
@click.option("--dataset", help="NAME@VERSION to evaluate on (default: the candidate's own).")
@click.option("--recipe", "recipe_name", help="Recipe that evaluates it (default: its run's).")
def promote(
    workspace: str,
    name: str,
    version: str,
    alias_name: str,
    force: bool,
    dataset: str | None,
    recipe_name: str | None,
) -> None:
    """Move ALIAS to VERSION of NAME after the evaluation gate.

    The candidate and the version holding the alias are evaluated on the same held-out rows with
    the recipe's gate metric; a worse candidate (beyond the recipe's tolerance) is refused.
    """
    from appliance.models.promotion import promote as run_gate

    result = run_gate(
        services(), workspace, f"{name}@{version}", alias_name,
        force=force, dataset=dataset, recipe=recipe_name,
    )  # fmt: skip
    click.echo(f"{name}@{alias_name} → version {result.candidate['version']}: {result.summary()}")


@model.command()
@click.argument("workspace")
@click.argument("ref", metavar="NAME@VERSION|NAME@ALIAS")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--format", "fmt", type=click.Choice(["mlflow"]), default="mlflow", show_default=True,
    help="mlflow: an MLflow pyfunc model folder (needs mlflow-skinny installed here).",
)  # fmt: skip
def export(workspace: str, ref: str, out: Path, fmt: str) -> None:
    """Write a model version to OUT for tools beyond this machine: `mlflow.pyfunc.load_model`,
    `mlflow models serve`, or an MLflow registry (see docs/outgrowing.md)."""
    from appliance.models.export import export_model

    done = export_model(services(), workspace, ref, out, fmt)
    click.echo(f"{done['model']}@{done['version']} → {done['path']} ({done['format']} pyfunc)")


@model.command()
@click.argument("workspace")
@click.argument("ref", metavar="NAME@VERSION")
@click.option(
    "--force", is_flag=True,
    help="Delete it even though an endpoint rolls back to it or a job run awaits approval to "
    "deploy it (never while it is deployed, aliased or fine-tuned by a live run).",
)  # fmt: skip
@json_option
def delete(workspace: str, ref: str, force: bool, as_json: bool) -> None:
    """Delete version REF of a model: its record, calibration and folder.

    Refused, with the reason, while it is deployed, holds an alias (production, staging...), or
    a queued or running run fine-tunes it. Its predictions, feedback and events stay for the
    monitoring history, and version numbers are never reused."""
    from appliance.cli.gc import freed_line

    label, freed = services().models.delete(workspace, ref, force=force)
    if as_json:
        emit_json({"deleted": label, **asdict(freed)})
        return
    click.echo(freed_line(label, freed))


@model.group()
def alias() -> None:
    """Point a name such as `production` at a version, or remove it."""


@alias.command("set")
@click.argument("workspace")
@click.argument("ref", metavar="NAME@VERSION")
@click.argument("alias_name", metavar="ALIAS")
def alias_set(workspace: str, ref: str, alias_name: str) -> None:
    """Point ALIAS of the model at VERSION."""
    row = services().models.set_alias(workspace, ref, alias_name)
    click.echo(f"{row['name']}@{alias_name} → version {row['version']}")


@alias.command("unset")
@click.argument("workspace")
@click.argument("name")
@click.argument("alias_name", metavar="ALIAS")
def alias_unset(workspace: str, name: str, alias_name: str) -> None:
    """Remove ALIAS from model NAME."""
    services().models.unset_alias(workspace, name, alias_name)
    click.echo(f"removed {name}@{alias_name}")


def _parse_metrics(pairs: tuple[str, ...]) -> dict[str, float]:
    metrics = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        try:
            if not sep or not key:
                raise ValueError
            metrics[key] = float(value)
        except ValueError:
            raise InvalidInput(f"--metric {pair!r} must look like name=0.93") from None
    return metrics
