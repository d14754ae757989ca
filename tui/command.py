"""`appliance up` (and `appliance` alone): the terminal UI, with the HTTP server, the monitor and
the scheduler running in the same process (`--no-server` to browse only).

The command lives here, not in `appliance.cli`, because the core never imports the TUI: the CLI
finds it through the `appliance.commands` entry point group (pyproject.toml)."""

from __future__ import annotations

import contextlib

import click

from appliance.cli.context import CliState


@click.command()
@click.option("--no-server", is_flag=True, help="Browse only: no HTTP server, no scheduler.")
@click.option("--host", help="Address to listen on [setting host, default 127.0.0.1].")
@click.option("--port", type=int, help="Port to listen on [setting port, default 8765].")
@click.pass_context
def up(ctx: click.Context, no_server: bool, host: str | None, port: int | None) -> None:
    """Open the terminal UI over this home. Unless --no-server, the HTTP server, the monitor and
    the job scheduler run in this process too, and stop when the UI closes."""
    from appliance.server.auth import check_listen_address

    state = ctx.find_object(CliState)
    assert state is not None
    state.overrides.update({k: v for k, v in (("host", host), ("port", port)) if v})
    services = state.services()
    if not no_server:
        # Refuse before the UI takes the terminal.
        check_listen_address(services.settings, has_users=bool(services.users.list()))
    from tui import run_tui

    if no_server:
        run_tui(services)
        return
    from appliance.errors import Conflict
    from appliance.server.background import serving_in_background

    settings = services.settings
    with contextlib.ExitStack() as stack:
        try:
            base = stack.enter_context(
                serving_in_background(services, settings.port, host=settings.host)
            )
        except Conflict as exc:  # the home is served already: the UI can open beside it
            raise Conflict(f"{exc}; or open the UI with `appliance up --no-server`") from None
        run_tui(services, server_url=base)
