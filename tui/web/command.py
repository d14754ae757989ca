"""`appliance web`: the terminal UI in a browser. Registered like `up` (the `appliance.commands`
entry point group in pyproject.toml), since the core never imports the TUI; it imports aiohttp
and textual-serve only when it runs, so `appliance --help` stays light."""

from __future__ import annotations

import click

from appliance.cli.context import CliState


@click.command()
@click.option("--host", help="Address to listen on [setting host, default 127.0.0.1].")
@click.option("--port", type=int, help="Port to listen on [setting web_port, default 8766].")
@click.pass_context
def web(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Serve the terminal UI to web browsers: each tab that logs in with a token (any role,
    viewer and above) gets its own TUI, running as that token's user. Below the developer role
    it is read-only. It links to the home's running server (`appliance serve`) when there is
    one and never starts one.

    Listening beyond loopback needs a token someone could log in with (a user, or the admin
    token); put TLS in front of it there (see docs/web.md)."""
    from appliance.errors import InvalidInput
    from appliance.server.auth import is_loopback

    state = ctx.find_object(CliState)
    assert state is not None
    state.overrides.update({k: v for k, v in (("host", host), ("web_port", port)) if v is not None})
    services = state.services()
    settings = services.settings
    if not is_loopback(settings.host) and not settings.token and not services.users.list():
        raise InvalidInput(
            f"listening on {settings.host} (beyond loopback) needs tokens to log in with: add a "
            "user (`appliance user add NAME --role viewer`), or set the token_file setting or "
            "APPLIANCE_TOKEN"
        )
    try:
        from tui.web.server import WebServer
    except ModuleNotFoundError as exc:
        raise InvalidInput(
            f"`appliance web` needs textual-serve ({exc.name} is missing): "
            "pip install textual-serve==1.1.3"
        ) from None
    server = WebServer(services, settings.host, settings.web_port)
    server.run(lambda url: click.echo(f"web UI of {settings.home} on {url}", err=True))
