"""A dataset version's columns: every key its metadata.jsonl rows use, with how many rows give it
a value, and what changed between two versions' columns (a `keywords` column that appears)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from appliance.artifacts import ArtifactStore
from appliance.datasets.imagefolder import METADATA

Columns = dict[str, int]
KEYS = ("file_name", "id")  # what names a row, not something a row says


def has_value(value: Any) -> bool:
    """Whether a cell holds something: not null, not a blank string, not an empty list or object."""
    if isinstance(value, str):
        return bool(value.strip())
    return value is not None and value != [] and value != {}


def count_columns(rows: Iterable[Mapping[str, Any]]) -> Columns:
    """{column: rows that give it a value}, sorted by name; a key that only ever holds empty
    values is a column in 0 rows."""
    present: set[str] = set()
    counts: Counter[str] = Counter()
    for row in rows:
        present.update(row)
        counts.update(k for k, v in row.items() if has_value(v))
    return {name: counts[name] for name in sorted(present)}


def schema_change(
    a: Mapping[str, int], b: Mapping[str, int], rows_a: int, rows_b: int
) -> dict[str, Any]:
    """Columns added (with their rows in b), removed (with their rows in a), and those whose
    rows with a value changed ({"from": n, "to": m}). A column every row gives a value on both
    sides has not changed, however many rows were added or removed."""
    full = {k for k in a.keys() & b.keys() if a[k] == rows_a and b[k] == rows_b}
    return {
        "added": {k: b[k] for k in sorted(b.keys() - a.keys())},
        "removed": {k: a[k] for k in sorted(a.keys() - b.keys())},
        "changed": {
            k: {"from": a[k], "to": b[k]}
            for k in sorted(a.keys() & b.keys() - full)
            if a[k] != b[k]
        },
    }


def describe_schema(change: Mapping[str, Any]) -> list[str]:
    """'+keywords in 600 rows', '-color (was in 400 rows)', 'keywords: 10 → 600 rows'."""
    return [
        *(f"+{k} in {_rows(n)}" for k, n in change["added"].items()),
        *(f"-{k} (was in {_rows(n)})" for k, n in change["removed"].items()),
        *(f"{k}: {n['from']} → {_rows(n['to'])}" for k, n in change["changed"].items()),
    ]


def describe_columns(columns: Mapping[str, int], row_count: int) -> str:
    """'file_name, keywords (10), text': a column in fewer than every row says in how many."""
    if not columns:
        return "-"
    return ", ".join(k if n == row_count else f"{k} ({n})" for k, n in columns.items())


def encode(columns: Columns) -> str:
    return json.dumps(columns, sort_keys=True, separators=(",", ":"))


def decode(text: str | None) -> Columns:
    return dict(json.loads(text)) if text else {}


def stored_rows(store: ArtifactStore, digest: str) -> list[dict[str, Any]]:
    """The metadata.jsonl rows of the version whose manifest is `digest`."""
    manifest = json.loads(store.read_bytes(digest))
    (sha256,) = (f["sha256"] for f in manifest["files"] if f["path"] == METADATA)
    text = store.read_bytes(sha256).decode()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _rows(n: int) -> str:
    return f"{n} row" if n == 1 else f"{n} rows"
