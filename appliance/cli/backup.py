"""`appliance backup`, `appliance restore` and `appliance check`: a home saved to one archive
while it serves, restored into a new folder only once every file checks out, and its registry
checked by SQLite (appliance/backup/, docs/backup.md)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from appliance.cli.context import CliState, json_option, services
from appliance.cli.output import emit_json, human_bytes

_SHOWN_COUNTS = (
    ("workspaces", "workspaces"), ("dataset_versions", "dataset versions"),
    ("model_versions", "model versions"), ("runs", "runs"), ("deployments", "deployments"),
    ("predictions", "predictions"), ("feedback", "feedback"), ("events", "events"),
)  # fmt: skip


@click.command()
@click.argument("out", type=click.Path(path_type=Path))
@click.option(
    "--logs/--no-logs", default=True, show_default=True,
    help="Include the training runs' logs (logs/runs/).",
)  # fmt: skip
@json_option
def backup(out: Path, logs: bool, as_json: bool) -> None:
    """Write a backup of this home to the archive OUT, also while its server runs: a
    consistent copy of the registry (SQLite's online backup), the stored files, model versions,
    review inputs and run logs it refers to, each checked against its digest, and the settings
    file, with a manifest. OUT ending in .gz or .tgz is gzip-compressed; OUT an existing folder
    gets a file named after the time. A file that does not match its digest fails the backup,
    and no archive is left at OUT.

    \b
    appliance backup /mnt/usb/appliance-2025-06-01.tar
    """
    from appliance.backup.create import create_backup

    settings = services().settings
    if out.is_dir():
        out = out / f"appliance-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.tar"
    result = create_backup(settings.home, out, logs=logs, timeout_ms=settings.busy_timeout_ms)
    if as_json:
        emit_json(result.as_dict())
        return
    click.echo(
        f"backup written: {result.path} ({human_bytes(result.size)}, {result.files} files, "
        f"{result.seconds:.1f} s)"
    )
    click.echo(f"  registry: {_counts(result.counts)}")
    click.echo(
        f"  files: {result.blobs} stored blobs, {result.models} model version folders, "
        f"{result.review} review inputs, {result.logs} run logs; each matched its digest"
    )
    if result.review_gone:
        click.echo(f"  {result.review_gone} review inputs went after the snapshot (let go)")
    _recipes_note(result.recipes_outside)


@click.command()
@click.argument("source", metavar="FROM", type=click.Path(path_type=Path))
@click.argument("home", type=click.Path(path_type=Path))
@json_option
def restore(source: Path, home: Path, as_json: bool) -> None:
    """Restore the backup archive FROM into HOME, a new (or empty) folder. Every file is
    checked against the manifest and the registry with integrity_check before anything is
    put in place; a mismatch restores nothing. Serve it with `appliance --home HOME serve`.

    \b
    appliance restore /mnt/usb/appliance-2025-06-01.tar ~/appliance-restored
    """
    from appliance.backup.restore import restore_backup

    restored = restore_backup(source, home)
    if as_json:
        emit_json(restored.as_dict())
        return
    click.echo(
        f"restored {restored.source} into {restored.home}: {restored.files} files "
        f"({human_bytes(restored.bytes)}), each matching the manifest; the registry passed "
        f"integrity_check ({restored.seconds:.1f} s)"
    )
    click.echo(
        f"  backup of {restored.from_home}, made at {restored.created_at} by appliance "
        f"{restored.appliance_version}"
    )
    click.echo(f"  registry: {_counts(restored.counts)}")
    if restored.logs_moved:
        click.echo(f"  {restored.logs_moved} run log paths moved to the new home")
    _recipes_note(restored.recipes_outside)
    click.echo(f"serve it: appliance --home {restored.home} serve")


@click.command()
@click.option("--full", is_flag=True, help="PRAGMA integrity_check (also every index) instead "
              "of quick_check.")  # fmt: skip
@click.option(
    "--files", is_flag=True,
    help="Also hash every file the registry refers to (stored blobs, model version folders) "
    "and compare it with its digest.",
)  # fmt: skip
@json_option
def check(full: bool, files: bool, as_json: bool) -> None:
    """Check this home's registry with SQLite's quick_check (or integrity_check with --full),
    and with --files the files it refers to. A corrupt registry is an error naming what is
    wrong and how to restore a backup."""
    from appliance.backup.integrity import check_registry
    from appliance.backup.verify import verify_home
    from appliance.errors import ApplianceError

    settings = _settings()
    checked = check_registry(settings.registry_path, full, settings.busy_timeout_ms)
    answer: dict[str, Any] = {
        "registry": str(checked.path), "check": checked.check, "ok": True,
        "bytes": checked.bytes, "seconds": round(checked.seconds, 3),
    }  # fmt: skip
    if not as_json:
        click.echo(
            f"registry {checked.path}: ok ({checked.check}, {human_bytes(checked.bytes)}, "
            f"{checked.seconds * 1000:.0f} ms)"
        )
    if files:
        verified = verify_home(settings.home, settings.registry_path)
        answer["files"] = {
            "blobs": verified.blobs, "models": verified.models, "review": verified.review,
            "bytes": verified.bytes, "problems": verified.problems,
        }  # fmt: skip
        answer["ok"] = not verified.problems
        if not as_json:
            for problem in verified.problems:
                click.echo(f"problem: {problem}", err=True)
            if not verified.problems:
                click.echo(
                    f"files: {verified.blobs} stored blobs, {verified.models} model version "
                    f"folders and {verified.review} review inputs "
                    f"({human_bytes(verified.bytes)}): each matches its digest"
                )
    if as_json:
        emit_json(answer)
    if not answer["ok"]:
        problems = answer["files"]["problems"]
        raise ApplianceError(
            f"{len(problems)} file problem(s) in {settings.home}: {problems[0]}; restore a "
            "backup (`appliance restore BACKUP NEWHOME`)"
        )


def corrupt_registry_message(ctx: click.Context, exc: sqlite3.DatabaseError) -> str | None:
    """The CLI's line for a corrupt registry met by a query (a registry too large to be
    checked at every open), or None when `exc` is another database error."""
    from appliance.backup.integrity import corrupt, is_corruption

    if not is_corruption(exc):
        return None
    try:
        path = _settings(ctx).registry_path
    except Exception:  # settings that do not load: say what we know
        return f"the registry is corrupt ({exc}); see docs/backup.md to restore a backup"
    return str(corrupt(path, str(exc)))


def _settings(ctx: click.Context | None = None) -> Any:
    """This command's settings, without opening the registry (it may be the problem)."""
    from appliance.settings import Settings

    state = (ctx or click.get_current_context()).find_object(CliState)
    assert state is not None
    if state._services is not None:
        return state._services.settings
    return Settings.load(**state.overrides)


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{counts.get(key, 0):,} {label}" for key, label in _SHOWN_COUNTS)


def _recipes_note(recipes: list[str]) -> None:
    if recipes:
        click.echo(
            "  note: recipes registered by path live outside the home and are not in the "
            f"archive: {', '.join(recipes)}"
        )
