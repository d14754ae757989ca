"""Validating a text dataset: a folder whose `metadata.jsonl` holds the rows themselves, one JSON
object per line with a `text` (and, to train a classifier, a `label`), no files beside it (the
`json` layout of Hugging Face datasets). The metadata is the whole version. Every problem is
collected and reported at once, with line numbers, before anything is imported."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.datasets.imagefolder import METADATA, metadata_objects, refuse_if
from appliance.errors import InvalidInput


@dataclass(frozen=True)
class TextRows:
    root: Path
    rows: tuple[dict[str, Any], ...]
    ignored: tuple[str, ...]  # files in the folder besides metadata.jsonl

    @property
    def files(self) -> list[str]:
        return [METADATA]


def is_text_rows(root: Path) -> bool:
    """Whether `root` holds rows of text rather than an imagefolder: its first row is an object
    with a `text` and no `file_name`."""
    try:
        with (root / METADATA).open(encoding="utf-8") as metadata:
            first = next((line for line in metadata if line.strip()), "")
        row = json.loads(first)
    except (OSError, UnicodeDecodeError, ValueError):
        return False  # the imagefolder reader reports what is wrong
    return isinstance(row, dict) and "file_name" not in row and "text" in row


def read_text_rows(root: Path) -> TextRows:
    metadata = root / METADATA
    if metadata.is_symlink():
        raise InvalidInput(f"{metadata} is a symbolic link; copy the real file into the folder")
    try:
        lines = metadata.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{metadata} is not UTF-8 text ({exc})") from None
    problems: list[str] = []
    rows: list[dict[str, Any]] = []
    ids: set[str] = set()
    for where, row in metadata_objects(lines, problems):
        if problem := _row_problem(row, ids):
            problems.append(f"{where}: {problem}")
            continue
        rows.append(row)
    if not rows and not problems:
        problems.append(f"{METADATA} lists no rows")
    refuse_if(problems, root, "text dataset")
    ignored = sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.name != METADATA and not p.name.startswith(".")
    )
    return TextRows(root, tuple(rows), tuple(ignored))


def _row_problem(row: dict[str, Any], ids: set[str]) -> str | None:
    if "file_name" in row:
        return "names a 'file_name': a text dataset's rows hold their text, not files"
    if not isinstance(row.get("text"), str) or not row["text"].strip():
        return "'text' must be a non-empty string"
    if "label" in row and not isinstance(row["label"], str):
        return "'label' must be a string"
    if "id" in row:
        if not isinstance(row["id"], str) or not row["id"]:
            return "'id' must be a non-empty string"
        if row["id"] in ids:
            return f"id '{row['id']}' is listed twice"
        ids.add(row["id"])
    return None


def row_key(row: dict[str, Any]) -> str:
    """What names a row across versions: its image's file name, else its id, else its text."""
    return str(row.get("file_name") or row.get("id") or row.get("text", ""))
