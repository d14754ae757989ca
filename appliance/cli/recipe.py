"""`appliance recipe …` and `appliance new`"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from appliance.cli.context import json_option, services
from appliance.cli.output import emit_json, emit_record, emit_table


@click.group()
def recipe() -> None:
    """Register, list and inspect recipes (folders with recipe.toml and train/evaluate code)."""


@recipe.command()
@click.argument("workspace")
@click.argument("folder", type=click.Path(path_type=Path))
def add(workspace: str, folder: Path) -> None:
    """Register the recipe in FOLDER in WORKSPACE (by path: edits take effect in later runs)."""
    spec = services().recipes.add(workspace, folder)
    click.echo(f"added recipe {spec.name} from {spec.folder}")


@recipe.command("list")
@click.argument("workspace")
@json_option
def list_(workspace: str, as_json: bool) -> None:
    """List the built-in recipes and those added to WORKSPACE."""
    rows = services().recipes.list(workspace)
    emit_json(rows) if as_json else emit_table(rows, ("name", "source", "path"))


@recipe.command()
@click.argument("workspace")
@click.argument("name")
@json_option
def show(workspace: str, name: str, as_json: bool) -> None:
    """Show a recipe: its task, gate and params with their defaults and help."""
    spec = services().recipes.get(workspace, name)
    params = [vars(p) for p in spec.params.values()]
    if as_json:
        emit_json({"name": spec.name, "task": spec.task, "folder": str(spec.folder),
                   "gate": asdict(spec.gate), "params": params})  # fmt: skip
        return
    gate = "; ".join(
        f"{c.metric} ({c.direction} is better, tolerance {c.tolerance})" for c in spec.gate.checks
    )
    emit_record({"name": spec.name, "task": spec.task, "description": spec.description,
                 "folder": str(spec.folder), "gate": gate})  # fmt: skip
    click.echo()
    emit_table(params, ("name", "type", "default", "help"))


@click.command()
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--from", "source", default="captioner", show_default=True, help="Recipe to copy.")
@click.option("--name", help="The new recipe's name (default: the folder's name).")
def new(folder: Path, source: str, name: str | None) -> None:
    """Copy a built-in recipe into FOLDER for you to change (the Golden Path template)."""
    from appliance.errors import NotFound
    from appliance.recipes.catalog import builtin_recipes, copy_recipe

    builtin = builtin_recipes()
    if source not in builtin:
        raise NotFound(f"no built-in recipe '{source}' (built-in: {', '.join(sorted(builtin))})")
    spec = copy_recipe(builtin[source], folder, name)
    click.echo(f"created recipe {spec.name} in {folder}; read {folder / 'README.md'} next")
    click.echo(f"register it with: appliance recipe add WORKSPACE {folder}")
