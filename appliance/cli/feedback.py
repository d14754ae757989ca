"""`appliance feedback …`: what people think of the platform itself. (Feedback on one prediction
goes through its endpoint: `POST /v1/predictions/{id}/feedback`.)"""

from __future__ import annotations

import getpass
import sys

import click

from appliance.cli.context import json_option, services
from appliance.cli.output import emit_json


@click.group()
def feedback() -> None:
    """Rate the platform: a 1-5 rating with an optional comment, for the platform report."""


@feedback.command()
@click.option("--rating", type=int, required=True, help="1 (poor) to 5 (great).")
@click.option(
    "--comment",
    default="",
    help="What works or does not (at most 2,000 characters; - reads stdin).",
)
@click.option("--workspace", help="The workspace (team) you speak for, if one.")
@json_option
def platform(rating: int, comment: str, workspace: str | None, as_json: bool) -> None:
    """Rate the platform from 1 to 5, with an optional comment."""
    from appliance.platform.feedback import MAX_COMMENT, PlatformFeedback

    if comment == "-":
        comment = sys.stdin.read(MAX_COMMENT + 1)  # never more than one past the limit
        if len(comment) > MAX_COMMENT:
            from appliance.errors import InvalidInput

            raise InvalidInput(f"the comment on stdin is over {MAX_COMMENT:,} characters")
    opened = services()
    row = PlatformFeedback(opened.registry).add(
        rating, comment, source="cli", user=_who(), workspace=workspace
    )
    if as_json:
        emit_json(row)
        return
    where = f" for {workspace}" if workspace else ""
    click.echo(f"thank you: rated the platform {row['rating']} of 5{where}")


def _who() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no login name (a container without a passwd entry)
        return "cli"
