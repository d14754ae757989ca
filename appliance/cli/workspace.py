"""`appliance workspace …`"""

from __future__ import annotations

import click

from appliance.cli.context import json_option, services
from appliance.cli.output import emit_json, emit_record, emit_table

_COLUMNS = ("name", "datasets", "runs", "models", "deployments", "created_at")


@click.group()
def workspace() -> None:
    """Create, list, show and delete workspaces."""


@workspace.command()
@click.argument("name")
@click.option("--description", default="", help="A line saying what the workspace is for.")
@json_option
def create(name: str, description: str, as_json: bool) -> None:
    """Create the workspace NAME."""
    row = services().workspaces.create(name, description)
    emit_json(row) if as_json else click.echo(f"created workspace {name}")


@workspace.command("list")
@json_option
def list_(as_json: bool) -> None:
    """List workspaces with what each holds."""
    rows = services().workspaces.list()
    emit_json(rows) if as_json else emit_table(rows, _COLUMNS)


@workspace.command()
@click.argument("name")
@json_option
def show(name: str, as_json: bool) -> None:
    """Show one workspace."""
    row = services().workspaces.show(name)
    emit_json(row) if as_json else emit_record(row)


@workspace.command()
@click.argument("name")
@click.option("--force", is_flag=True, help="Also delete everything the workspace holds.")
def delete(name: str, force: bool) -> None:
    """Delete the workspace NAME with its files (refused while it holds anything, unless
    --force; always while one of its runs is queued or running).

    Its model version folders, run logs and scratch, review inputs, and the stored files no
    other workspace shares go with it."""
    from appliance.cli.gc import freed_line

    freed = services().workspaces.delete(name, force=force)
    click.echo(freed_line(f"workspace {name}", freed))
