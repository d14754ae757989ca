"""`appliance serve`"""

from __future__ import annotations

import click

from appliance.cli.context import CliState


@click.command()
@click.option("--host", help="Address to listen on [setting host, default 127.0.0.1].")
@click.option("--port", type=int, help="Port to listen on [setting port, default 8765].")
@click.option(
    "--token",
    help="Bearer token for write endpoints [setting token]. Visible to every local user in "
    "`ps`: prefer APPLIANCE_TOKEN or the token_file setting.",
)
@click.option("--log-level", default="info", show_default=True, help="uvicorn's log level.",
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))  # fmt: skip
@click.pass_context
def serve(
    ctx: click.Context, host: str | None, port: int | None, token: str | None, log_level: str
) -> None:
    """Run the appliance headless, e.g. under systemd: the HTTP server (predictions, OIP v2,
    management, monitoring, jobs), the monitor and the job scheduler, in this one process.

    Recorded deployments are loaded at start; /v2/health/ready answers 503 until they are.
    Runs a dead process left running are marked failed first. SIGTERM or Ctrl-C stops taking
    requests, finishes those in flight, stops the scheduler and its training runs, and writes
    the last captured predictions. Listening beyond loopback requires tokens: the admin
    token (APPLIANCE_TOKEN or the token_file setting) or users (`appliance user add`).

    While it runs, the server records its address in the home (server.json): the CLI on this
    home finds it there, whatever the port, and a server refuses the CLI of another home.
    One server per home: a second `serve` or `up` on a served home refuses, naming the pid of
    the first.
    """
    from appliance.server.app import create_app
    from appliance.server.auth import check_listen_address
    from appliance.server.listen import HomeServer
    from appliance.server.lock import HomeLock

    if token is not None:
        click.echo(
            "warning: a token on the command line is visible to every local user (ps); set "
            "APPLIANCE_TOKEN or the token_file setting instead",
            err=True,
        )
    state = ctx.find_object(CliState)
    assert state is not None
    state.overrides.update(
        {k: v for k, v in (("host", host), ("port", port), ("token", token)) if v is not None}
    )
    services = state.services()
    settings = services.settings
    check_listen_address(settings, has_users=bool(services.users.list()))
    lock = HomeLock(settings.home)  # before the app restores deployments or schedules jobs
    click.echo(f"serving {settings.home} on http://{settings.host}:{settings.port}", err=True)
    HomeServer(
        create_app(services), settings.home, lock, host=settings.host, port=settings.port,
        log_level=log_level, timeout_graceful_shutdown=30,
    ).run()  # fmt: skip
