"""`appliance gc`, and how every delete says what it gave back."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

import click

from appliance.cli.context import json_option, services
from appliance.cli.output import emit_json, emit_table, human_bytes

if TYPE_CHECKING:  # the registry is imported when a command runs, not for `--help`
    from appliance.artifacts.gc import Freed, Plan


@click.command()
@click.option(
    "--dry-run",
    is_flag=True,
    help="List what would go and the bytes it would free; remove nothing.",
)
@click.option(
    "--grace", "grace_s", type=click.IntRange(min=0), metavar="SECONDS",
    help="Leave files younger than this (default: the gc_grace_seconds setting, 3600).",
)  # fmt: skip
@json_option
def gc(dry_run: bool, grace_s: int | None, as_json: bool) -> None:
    """Remove the files of the home that nothing refers to: stored blobs no dataset version or
    run names, model and dataset folders without their version, staging and temporary files,
    run scratch and logs of finished or deleted runs, review inputs no item keeps.

    Safe while the server runs: a file younger than the grace period may be an upload whose
    record is on its way, and stays. Bytes are disk bytes (sparse files count what they hold)."""
    collector = services().collector
    if grace_s is not None:
        collector.grace_s = grace_s
    plan = collector.plan()
    if dry_run:
        _show_plan(plan, as_json)
        return
    freed = collector.collect(plan)
    if as_json:
        emit_json({**asdict(freed), "kinds": _kinds(plan)})
        return
    for kind, (count, size) in plan.by_kind().items():
        click.echo(f"{kind}: {count} removed, {human_bytes(size)}")
    click.echo(f"freed {human_bytes(freed.bytes)} ({freed.bytes:,} bytes, {freed.items} items)")
    _notes(freed.young_bytes, freed.problems, collector.grace_s)


def freed_line(what: str, freed: Freed | None) -> str:
    """'deleted captioner@3; freed 12.3 MB' (and what stays for `appliance gc`)."""
    if freed is None:
        return f"deleted {what}"
    line = f"deleted {what}; freed {human_bytes(freed.bytes)}"
    if freed.young_bytes:
        line += (
            f" ({human_bytes(freed.young_bytes)} more of stored files younger than the grace "
            "period stay for `appliance gc`)"
        )
    return line


def _show_plan(plan: Plan, as_json: bool) -> None:
    home = services().settings.home
    rows = [
        {"kind": g.kind, "bytes": g.bytes, "path": g.path.relative_to(home).as_posix()}
        for g in plan.items
    ]
    if as_json:
        emit_json({"items": rows, "bytes": plan.bytes, "young_bytes": plan.young_bytes,
                   "problems": plan.problems, "kinds": _kinds(plan)})  # fmt: skip
        return
    emit_table(rows, ("kind", "bytes", "path"))
    click.echo(f"would free {human_bytes(plan.bytes)} ({plan.bytes:,} bytes, {len(rows)} items)")
    _notes(plan.young_bytes, plan.problems, services().collector.grace_s)


def _kinds(plan: Plan) -> dict[str, dict[str, int]]:
    return {k: {"items": n, "bytes": b} for k, (n, b) in plan.by_kind().items()}


def _notes(young_bytes: int, problems: tuple[str, ...] | list[str], grace_s: float) -> None:
    if young_bytes:
        click.echo(
            f"kept: {human_bytes(young_bytes)} unreferenced but touched in the last "
            f"{grace_s:g} s (the grace period: an upload may still need it)"
        )
    for problem in problems:
        click.echo(f"warning: {problem}", err=True)
