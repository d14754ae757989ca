"""Refilling a DataTable that a screen reloads every few seconds: cells change in place while
the same rows are shown, so the cursor and scroll position hold; otherwise the rows are rebuilt
and the cursor returns to the row it was on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from textual.widgets import DataTable

Row = tuple[str, Sequence[Any]]  # (row key, cells in column order)


def fill(table: DataTable[Any], rows: Sequence[Row]) -> None:
    keys = [key for key, _ in rows]
    if [row.key.value for row in table.ordered_rows] == keys:
        columns = list(table.columns)
        for key, cells in rows:
            for column, cell in zip(columns, cells, strict=True):
                table.update_cell(key, column, cell, update_width=True)
        return
    current = key_at_cursor(table)
    table.clear()
    for key, cells in rows:
        table.add_row(*cells, key=key)
    if current in keys:
        table.move_cursor(row=keys.index(current))


def key_at_cursor(table: DataTable[Any]) -> str | None:
    """The key of the highlighted row; None when the table is empty."""
    if not table.row_count:
        return None
    row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
    return row_key.value
