"""Printing results: aligned tables for people, `--json` for scripts."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import click

from appliance.models.describe import human_bytes as human_bytes  # for the commands


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def emit_table(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> None:
    """Print `columns` of `rows` as an aligned table; an empty list prints '(none)'."""
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    if not cells:
        click.echo("(none)")
        return
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    click.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def emit_record(record: Mapping[str, Any]) -> None:
    width = max((len(k) for k in record), default=0)
    for key, value in record.items():
        click.echo(f"{key.ljust(width)}  {_cell(value)}")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_cell(v)}" for k, v in value.items()) or "-"
    if isinstance(value, list | tuple):
        return ", ".join(_cell(v) for v in value) or "-"
    return str(value)
