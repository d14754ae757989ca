"""`appliance user …` and `appliance audit`: who may use the server, and what they did."""

from __future__ import annotations

import sys

import click

from appliance.access.roles import Role
from appliance.cli.context import json_option, services
from appliance.cli.output import emit_json, emit_table


@click.group()
def user() -> None:
    """Users of the HTTP server: each has a role (viewer, predictor, developer, admin), maybe
    one workspace, and a token. Beyond loopback every request but the health probes needs one."""


@user.command()
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice([r.name for r in Role]),
    required=True,
    help="viewer reads monitoring and the registry; predictor also predicts and gives "
    "feedback; developer also deploys, runs, promotes and manages jobs; admin: everything.",
)
@click.option("--workspace", default=None, help="Limit the user to this workspace.")
@json_option
def add(name: str, role: str, workspace: str | None, as_json: bool) -> None:
    """Add the user NAME and print its token, once: only a salted hash of it is kept, so a lost
    token is revoked and issued again. Send it as `Authorization: Bearer <token>`."""
    row, token = services().users.add(name, Role[role], workspace)
    if as_json:
        emit_json(row | {"token": token})
        return
    where = f" of workspace {workspace}" if workspace else ""
    click.echo(f"added {name}, a {role}{where}. Its token (shown once, keep it secret):")
    click.echo(token)
    if sys.stdout.isatty():
        click.echo("pass it to a client through a file or the environment, never in argv", err=True)


@user.command("list")
@click.option("--all", "include_revoked", is_flag=True, help="Also the revoked users.")
@json_option
def list_(include_revoked: bool, as_json: bool) -> None:
    """List the users (never their tokens)."""
    rows = services().users.list(include_revoked)
    columns = ("name", "role", "workspace", "created_at", "created_by", "revoked_at")
    emit_json(rows) if as_json else emit_table(rows, columns)


@user.command()
@click.argument("name")
def revoke(name: str) -> None:
    """Revoke NAME's token: a running server refuses it within a second."""
    services().users.revoke(name)
    click.echo(f"revoked {name}")


@click.command()
@click.argument("workspace")
@click.option("--limit", default=50, show_default=True, help="How many entries, newest first.")
@click.option("--actor", default=None, help="Only what this user (or `local`, `admin`) did.")
@json_option
def audit(workspace: str, limit: int, actor: str | None, as_json: bool) -> None:
    """Who changed what in WORKSPACE, newest first: deploys, rollbacks, promotions and aliases
    (with their author), and every write request the server answered, refused ones too."""
    from appliance.access.audit import Audit

    svc = services()
    svc.workspaces.get(workspace)
    rows = Audit(svc.registry).trail(workspace, limit, actor)
    emit_json(rows) if as_json else emit_table(rows, ("at", "actor", "source", "what"))
