"""Validating a Hugging Face `imagefolder`: images plus `metadata.jsonl` rows of
`{"file_name": ..., "text": ...}`. Every problem is collected and reported at once, with line
numbers, before anything is imported."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from PIL import Image

from appliance.errors import InvalidInput

METADATA = "metadata.jsonl"
_MAX_LISTED = 25


@dataclass(frozen=True)
class ImageFolder:
    root: Path
    rows: tuple[dict[str, Any], ...]
    ignored: tuple[str, ...]  # files present but not named by metadata.jsonl

    @property
    def files(self) -> list[str]:
        """Relative paths that make up a version: the metadata and every image it names."""
        return sorted([METADATA, *(row["file_name"] for row in self.rows)])


def read_imagefolder(root: Path, max_image_pixels: int = 40_000_000) -> ImageFolder:
    if not root.is_dir():
        raise InvalidInput(f"{root} is not a folder")
    metadata = root / METADATA
    if metadata.is_symlink():
        raise InvalidInput(f"{metadata} is a symbolic link; copy the real file into the folder")
    if not metadata.is_file():
        raise InvalidInput(
            f"{root} has no {METADATA}; add one JSON line per image: "
            '{"file_name": "0001.png", "text": "a description"}'
        )
    problems: list[str] = []
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    try:
        lines = metadata.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{metadata} is not UTF-8 text ({exc})") from None
    for where, row in metadata_objects(lines, problems):
        file_name, text = row.get("file_name"), row.get("text")
        if not isinstance(file_name, str) or not file_name:
            problems.append(f"{where}: 'file_name' must be a non-empty string")
            continue
        if not isinstance(text, str):
            problems.append(f"{where}: 'text' must be a string")
        if problem := _path_problem(root, file_name):
            problems.append(f"{where}: {problem}")
            continue
        if file_name in seen:
            problems.append(f"{where}: '{file_name}' is listed twice")
            continue
        seen.add(file_name)
        if problem := _image_problem(root / file_name, max_image_pixels):
            problems.append(f"{where}: '{file_name}' {problem}")
        rows.append(row)
    if not rows and not problems:
        problems.append(f"{METADATA} lists no images")
    refuse_if(problems, root, "imagefolder")
    ignored = sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.name != METADATA and not p.name.startswith(".")
        and p.relative_to(root).as_posix() not in seen
    )  # fmt: skip
    return ImageFolder(root, tuple(rows), tuple(ignored))


def refuse_if(problems: list[str], root: Path, layout: str) -> None:
    """Refuse the whole folder when it has problems, listing the first of them."""
    if problems:
        shown = problems[:_MAX_LISTED]
        more = len(problems) - len(shown)
        raise InvalidInput(
            f"{root} is not a valid {layout} ({len(problems)} problems); nothing was imported:\n"
            + "\n".join(f"  - {p}" for p in shown)
            + (f"\n  … and {more} more" if more else "")
        )


def metadata_objects(lines: list[str], problems: list[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The JSON objects of metadata.jsonl's lines, each with where it is ("metadata.jsonl line
    3"); blank lines are skipped and what is not an object goes to `problems`."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{METADATA} line {number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        if not isinstance(row, dict):
            problems.append(f"{where}: expected a JSON object")
            continue
        yield where, row


def _path_problem(root: Path, file_name: str) -> str | None:
    pure = PurePosixPath(file_name)
    if pure.is_absolute() or "\\" in file_name or ".." in pure.parts:
        return f"file_name '{file_name}' must be a relative path inside the folder, without '..'"
    path = root / pure
    try:
        # Any linked part counts, not only the last: `linked/x.png` under a linked folder too.
        if path.is_symlink() or not path.resolve().is_relative_to(root.resolve()):
            return f"'{file_name}' is a symbolic link; copy the real image into the folder"
        if not path.is_file():
            return f"'{file_name}' does not exist"
    except (OSError, ValueError) as exc:  # a name too long for the filesystem, a NUL byte
        return f"file_name '{file_name[:40]}' cannot be read ({exc})"
    return None


def _image_problem(path: Path, max_pixels: int) -> str | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > max_pixels:
                    return f"is {width}×{height}, over the {max_pixels:,}-pixel limit"
                image.load()  # decode fully: catches truncated files
    except Image.DecompressionBombWarning:
        return "is too large to decode safely"
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        return f"is not a readable image ({exc})"
    return None
