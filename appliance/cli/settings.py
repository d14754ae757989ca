"""`appliance settings`"""

from __future__ import annotations

import click

from appliance.cli.context import json_option, services
from appliance.cli.output import emit_json, emit_table


@click.command()
@json_option
def settings(as_json: bool) -> None:
    """Show every setting: its value now, where to set it, and what it does.

    Sources, lowest first: defaults, appliance.toml in the home, APPLIANCE_<NAME> environment
    variables, command-line options.
    """
    from appliance.settings import Settings

    current = services().settings
    rows = [
        {**row, "value": "(hidden)" if row["name"] == "token" and current.token else
         str(getattr(current, row["name"]))}
        for row in Settings.describe()
    ]  # fmt: skip
    if as_json:
        emit_json(rows)
    else:
        emit_table(rows, ("name", "value", "env", "help"))
