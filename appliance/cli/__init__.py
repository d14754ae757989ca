"""`appliance`: the command line. Each concept is a command group in its own module; heavy
modules are imported inside commands so `appliance --help` stays fast and never imports torch."""

from __future__ import annotations

import os
import sqlite3
import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from appliance import __version__
from appliance.cli.backup import backup, check, corrupt_registry_message, restore
from appliance.cli.context import CliState
from appliance.cli.dataset import dataset
from appliance.cli.demo import demo
from appliance.cli.deploy import deploy
from appliance.cli.feedback import feedback
from appliance.cli.gc import gc
from appliance.cli.job import job
from appliance.cli.model import model
from appliance.cli.monitor import monitor
from appliance.cli.recipe import new, recipe
from appliance.cli.report import report
from appliance.cli.review import review
from appliance.cli.run import run
from appliance.cli.serve import serve
from appliance.cli.settings import settings
from appliance.cli.user import audit, user
from appliance.cli.workspace import workspace
from appliance.disk import out_of_space
from appliance.errors import ApplianceError


class UserError(click.ClickException):
    """An ApplianceError shown as `error: …` and exit status 1."""

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.message}", err=True)


class ApplianceGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ApplianceError as exc:
            raise UserError(str(exc)) from None
        except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt):
            raise
        except BrokenPipeError:  # `appliance … | head` closed the pipe: nothing left to say
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(1)
        except (OSError, sqlite3.OperationalError) as exc:
            if (problem := out_of_space(exc)) is None:
                raise UserError(_report_bug(ctx, exc)) from None
            raise UserError(f"no space left: {problem}; free some space and try again") from None
        except sqlite3.DatabaseError as exc:  # corrupt pages a query met (not the open's check)
            raise UserError(corrupt_registry_message(ctx, exc) or _report_bug(ctx, exc)) from None
        except Exception as exc:  # a bug: keep the traceback in a file, not on the user's screen
            raise UserError(_report_bug(ctx, exc)) from None


@click.group(
    cls=ApplianceGroup,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="APPLIANCE_HOME",
    help="Folder holding the registry and artifacts [env APPLIANCE_HOME].",
)
@click.version_option(__version__, prog_name="appliance")
@click.pass_context
def cli(ctx: click.Context, home: Path | None) -> None:
    """An offline MLOps platform in one process: workspaces, versioned datasets, runs, a model
    registry, serving, monitoring and scheduled retraining on one machine.

    Alone, `appliance` opens the terminal UI (`appliance up`) when it is installed."""
    state = ctx.ensure_object(CliState)
    if home is not None:
        state.overrides["home"] = home
    ctx.call_on_close(state.close)
    if ctx.invoked_subcommand is None:
        up = cli.commands.get("up")
        if up is None:
            click.echo(ctx.get_help())
            return
        ctx.invoke(up)


for command in (
    workspace, dataset, recipe, run, model, deploy, serve, monitor, review, job, new, settings,
    demo, feedback, report, backup, restore, check, gc, user, audit,
):  # fmt: skip
    cli.add_command(command)


def _add_plugin_commands() -> None:
    """Commands other installed packages contribute (the TUI's `up`), without importing them
    here: each entry point names a small Click command that imports its package lazily."""
    from importlib.metadata import entry_points

    for entry in entry_points(group="appliance.commands"):
        try:
            cli.add_command(entry.load(), entry.name)
        except Exception as exc:  # a broken plugin must not take the whole CLI down
            click.echo(f"warning: command '{entry.name}' could not be loaded: {exc}", err=True)


_add_plugin_commands()


def main() -> None:
    cli.main(prog_name="appliance")


def _report_bug(ctx: click.Context, exc: Exception) -> str:
    state = ctx.find_object(CliState)
    try:
        home = state.services().settings.home if state else Path.cwd()
        log = home / "logs" / "errors.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as handle:
            handle.write(f"--- {datetime.now(UTC).isoformat()} {' '.join(sys.argv)}\n")
            handle.write(traceback.format_exc())
        where = f"details in {log}"
    except Exception:
        where = "no log could be written"
    return f"internal error ({type(exc).__name__}: {exc}); {where}"
