"""`appliance dataset …`"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from appliance.cli.context import json_option, services
from appliance.cli.output import emit_json, emit_record, emit_table, human_bytes
from appliance.datasets.columns import describe_columns, describe_schema
from appliance.errors import InvalidInput


@click.group()
def dataset() -> None:
    """Generate, add, list, compare and delete versioned datasets."""


KINDS = ("photos", "ad-text")
_PHOTO_ONLY = ("low_light_fraction", "size", "keyword_fraction")


@dataset.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--kind", type=click.Choice(KINDS), default="photos", show_default=True,
    help="photos: product photos with descriptions (an imagefolder); ad-text: classified-ad "
    "titles and texts with their category (metadata.jsonl only).",
)  # fmt: skip
@click.option("--count", type=int, default=2000, show_default=True, help="Number of images or ads.")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same files.")
@click.option(
    "--low-light-fraction", type=float, default=0.0, show_default=True,
    help="Share of images rendered as dark, noisy low-light photos (0 to 1); photos only.",
)  # fmt: skip
@click.option(
    "--categories",
    help="Comma-separated categories; default: all but 'car' (the story's new category).",
)
@click.option(
    "--size", type=int, default=64, show_default=True, help="Image side in pixels; photos only."
)
@click.option(
    "--keyword-fraction", type=float, default=0.0, show_default=True,
    help="Share of photos given seller keywords the photo cannot show (brand, condition, size) "
    "in a `keywords` column, their descriptions including them (0 to 1); photos only.",
)  # fmt: skip
@json_option
@click.pass_context
def generate(
    ctx: click.Context,
    out: Path,
    kind: str,
    count: int,
    seed: int,
    low_light_fraction: float,
    categories: str | None,
    size: int,
    keyword_fraction: float,
    as_json: bool,
) -> None:
    """Write a synthetic dataset to OUT: product photos (images + metadata.jsonl) or ad texts."""
    chosen = [c.strip() for c in categories.split(",") if c.strip()] if categories else None
    if kind == "ad-text":
        given = [
            n for n in _PHOTO_ONLY if ctx.get_parameter_source(n) is ParameterSource.COMMANDLINE
        ]
        if given:
            flags = ", ".join("--" + n.replace("_", "-") for n in given)
            raise InvalidInput(f"{flags} only applies to --kind photos")
        _generate_ads(out, count, seed, chosen, as_json)
        return
    from appliance.datasets.synthetic import generate as run_generate

    summary = run_generate(
        out, count=count, seed=seed, low_light_fraction=low_light_fraction,
        categories=chosen, size=size, keyword_fraction=keyword_fraction,
    )  # fmt: skip
    if as_json:
        emit_json({"path": str(summary.path), "count": summary.count,
                   "categories": summary.categories, "low_light": summary.low_light,
                   "keywords": summary.keyworded})  # fmt: skip
    else:
        keyworded = f", {summary.keyworded} with keywords" if summary.keyworded else ""
        click.echo(
            f"wrote {summary.count} images ({summary.low_light} low-light{keyworded}) to "
            f"{summary.path}: "
            + ", ".join(f"{k} {v}" for k, v in sorted(summary.categories.items()))
        )


def _generate_ads(
    out: Path, count: int, seed: int, categories: list[str] | None, as_json: bool
) -> None:
    from appliance.datasets.ad_text import generate as run_generate

    summary = run_generate(out, count=count, seed=seed, categories=categories)
    if as_json:
        emit_json({"path": str(summary.path), "count": summary.count,
                   "categories": summary.categories, "ambiguous": summary.ambiguous})  # fmt: skip
    else:
        click.echo(
            f"wrote {summary.count} ads ({summary.ambiguous} ambiguous) to {summary.path}: "
            + ", ".join(f"{k} {v}" for k, v in sorted(summary.categories.items()))
        )


@dataset.command()
@click.argument("workspace")
@click.argument("name")
@click.argument("folder", type=click.Path(path_type=Path))
@json_option
def add(workspace: str, name: str, folder: Path, as_json: bool) -> None:
    """Validate FOLDER and add it as a version of NAME: an imagefolder (images named by its
    metadata.jsonl) or a text dataset (a metadata.jsonl of rows with a text, alone).

    Adding content that is already a version of NAME finds that version instead.
    """
    result = services().datasets.add(workspace, name, folder)
    version = result.version
    if as_json:
        emit_json({**version, "created": result.created, "ignored": list(result.ignored)})
        return
    label = f"{name}@{version['version']} ({version['digest'][:12]})"
    if result.created:
        click.echo(
            f"added {label}: {version['row_count']} {_unit(version)}, "
            f"{human_bytes(version['total_bytes'])}"
        )
    else:
        click.echo(f"unchanged: the content is already {label}")
    if result.ignored:
        click.echo(f"ignored {len(result.ignored)} files not named in metadata.jsonl")


def _unit(version: dict[str, Any]) -> str:
    """What a version's rows are: images, or (a text dataset: metadata.jsonl alone) rows."""
    return "rows" if version["file_count"] == 1 else "images"


@dataset.command("list")
@click.argument("workspace")
@json_option
def list_(workspace: str, as_json: bool) -> None:
    """List the datasets of WORKSPACE."""
    rows = services().datasets.list(workspace)
    emit_json(rows) if as_json else emit_table(rows, ("name", "versions", "latest_version"))


@dataset.command()
@click.argument("workspace")
@click.argument("name")
@json_option
def versions(workspace: str, name: str, as_json: bool) -> None:
    """List the versions of dataset NAME, each with its columns: the keys of its metadata.jsonl
    rows, with the number of rows giving a value where that is not all of them."""
    rows = services().datasets.versions(workspace, name)
    if as_json:
        emit_json(rows)
        return
    # A text dataset's versions count rows; an imagefolder's, images (a name holds one kind).
    unit = "rows" if rows and all(_unit(r) == "rows" for r in rows) else "images"
    shown = [
        {
            **r,
            "digest": r["digest"][:12],
            "size": human_bytes(r["total_bytes"]),
            unit: r["row_count"],
            "columns": describe_columns(r["columns"], r["row_count"]),
        }
        for r in rows
    ]
    emit_table(shown, ("version", "digest", unit, "size", "created_at", "columns"))


@dataset.command()
@click.argument("workspace")
@click.argument("ref")
@json_option
def show(workspace: str, ref: str, as_json: bool) -> None:
    """Describe one version, given as NAME@VERSION (a number, vN, a digest prefix or latest; NAME
    alone is the latest): its rows, files, size, source and columns, each with the number of
    rows that give it a value."""
    version = services().datasets.get(workspace, ref)
    if as_json:
        emit_json(version)
        return
    emit_record(
        {
            "version": _heading(version),
            _unit(version): version["row_count"],
            "files": version["file_count"],
            "size": human_bytes(version["total_bytes"]),
            "source": version["source"] or None,
            "parent": version["parent_digest"][:12] if version["parent_digest"] else None,
            "created_at": version["created_at"],
        }
    )
    columns = version["columns"]
    click.echo("columns" + ("" if columns else "  - (not recorded)"))
    width = max((len(k) for k in columns), default=0)
    for name, count in columns.items():
        click.echo(f"  {name.ljust(width)}  {count} of {version['row_count']} rows")


@dataset.command()
@click.argument("workspace")
@click.argument("a")
@click.argument("b")
@click.option("--limit", type=int, default=10, show_default=True, help="Paths listed per kind.")
@json_option
def diff(workspace: str, a: str, b: str, limit: int, as_json: bool) -> None:
    """Compare two versions, given as NAME@VERSION (a number, vN, a digest prefix or latest):
    what was added, removed, changed and relabelled, the rows whose other metadata changed
    (rows_changed), the label counts that moved, and the columns added, removed or in more or
    fewer rows (schema)."""
    result = services().datasets.diff(workspace, a, b)
    if as_json:
        emit_json(result)
        return
    click.echo(_heading(result["from"]) + " → " + _heading(result["to"]))
    for kind in ("added", "removed", "changed", "relabelled", "rows_changed"):
        paths = result[kind]
        click.echo(f"  {kind}: {len(paths)}")
        for path in paths[:limit]:
            click.echo(f"    {path}")
        if len(paths) > limit:
            click.echo(f"    … {len(paths) - limit} more")
    moved = {k: n for k, n in result["labels"].items() if n["from"] != n["to"]}
    if moved:
        click.echo(
            "  labels: " + ", ".join(f"{k} {n['from']} → {n['to']}" for k, n in moved.items())
        )
    schema = describe_schema(result["schema"])
    click.echo("  schema: " + (", ".join(schema) if schema else "the same columns"))


@dataset.command()
@click.argument("workspace")
@click.argument("ref", metavar="NAME@VERSION")
@click.option(
    "--force", is_flag=True,
    help="Delete it even though model versions were trained on it or a retrain job is pinned "
    "to it (never while a queued or running run trains on it).",
)  # fmt: skip
@json_option
def delete(workspace: str, ref: str, force: bool, as_json: bool) -> None:
    """Delete version REF of a dataset, and the stored files no other version shares.

    Refused, with the reason, while model versions were trained on it (their evaluation,
    calibration and drift reference read it) or a job retrains on it, unless --force; always
    while a queued or running run trains on it. Version numbers are never reused."""
    from appliance.cli.gc import freed_line

    label, freed = services().datasets.delete(workspace, ref, force=force)
    if as_json:
        emit_json({"deleted": label, **asdict(freed)})
        return
    click.echo(freed_line(f"dataset {label}", freed))


def _heading(side: dict[str, Any]) -> str:
    return f"{side['name']}@{side['version']} ({side['digest'][:12]})"
