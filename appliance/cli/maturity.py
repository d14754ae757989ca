"""`appliance report maturity WS`: the workspace's maturity indicators, each with its verdict and
evidence, and its stage (docs/maturity.md). The report's modules are imported inside the command
so that `appliance --help` does not pay for them."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from appliance.cli.context import services
from appliance.cli.output import emit_json


@click.command()
@click.argument("workspace")
@click.option(
    "--window", default="30d", show_default=True, help="How far back to look: 7d, 30d, 12w."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report's data as JSON.")
@click.option("--markdown", "as_markdown", is_flag=True, help="Print the report as Markdown.")
@click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write a self-contained HTML page with DORA and platform plots to this file.",
)
def maturity(
    workspace: str, window: str, as_json: bool, as_markdown: bool, html_file: Path | None
) -> None:
    """Tech and Process maturity indicators of WORKSPACE, each yes/partly/no with its evidence
    from the registry, and an overall stage from immature to mature."""
    if as_json + as_markdown > 1:
        raise click.UsageError("choose one of --json and --markdown")
    from appliance.maturity import render
    from appliance.maturity.report import maturity_report

    report = maturity_report(services(), workspace, window)
    if html_file is not None:
        _write(html_file, render.html(report))
    if as_json:
        emit_json(report)
    elif as_markdown:
        click.echo(render.markdown(report))
    elif html_file is not None:
        click.echo(f"{render.headline(report)}\nwrote {html_file}")
    else:
        click.echo(render.terminal(report, width=min(120, shutil.get_terminal_size().columns)))


def _write(path: Path, text: str) -> None:
    """Write the page whole or not at all: a failed write leaves any earlier file as it was."""
    from appliance.errors import InvalidInput

    if not path.parent.is_dir():
        raise InvalidInput(f"cannot write {path}: the folder {path.parent} does not exist")
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_text(text, encoding="utf-8")
        partial.replace(path)
    except OSError as exc:
        if partial.is_file():
            partial.unlink()
        raise InvalidInput(f"cannot write {path}: {exc.strerror or exc}") from None
