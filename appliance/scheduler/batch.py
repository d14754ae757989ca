"""What a batch prediction folder holds: the files to answer and, where the folder is a Hugging
Face imagefolder (a `metadata.jsonl` beside its photos), the seller keywords each row gives the
file it names. metadata.jsonl is the folder's description, never a file to answer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from appliance.datasets.imagefolder import METADATA, metadata_objects
from appliance.errors import InvalidInput
from appliance.tasks.keywords import keywords_text

MAX_LISTED = 10


@dataclass(frozen=True)
class BatchFile:
    path: Path
    keywords: str | None = None
    """The row's keywords as a request's keywords field ("vintage, size 42"), or None."""
    problem: str | None = None
    """Why the row's keywords cannot be used: the file is answered as an error line."""


def batch_files(source: Path) -> list[BatchFile]:
    """The folder's files to answer (not hidden ones, not metadata.jsonl), by name, each with
    its metadata.jsonl row's keywords: a list of phrases or a comma-separated text. A file
    without a row is answered without keywords. A metadata.jsonl that is not JSON lines of
    objects with a `file_name` is refused whole, before anything is answered."""
    if not source.is_dir():
        raise InvalidInput(f"the batch folder {source} does not exist")
    files = sorted(
        p for p in source.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.name != METADATA
    )  # fmt: skip
    rows = _keyword_rows(source)
    out = []
    for path in files:
        given = rows.get(path.name)
        if isinstance(given, InvalidInput):
            out.append(BatchFile(path, problem=str(given)))
        else:
            out.append(BatchFile(path, given))
    return out


def _keyword_rows(source: Path) -> dict[str, str | InvalidInput | None]:
    """file_name → its row's keywords (None without any), or the problem with them."""
    metadata = source / METADATA
    if not metadata.is_file():
        return {}
    try:
        lines = metadata.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{metadata} is not UTF-8 text ({exc}); nothing was answered") from None
    problems: list[str] = []
    found: dict[str, str | InvalidInput | None] = {}
    for where, row in metadata_objects(lines, problems):
        name = row.get("file_name")
        if not isinstance(name, str) or not name:
            problems.append(f"{where}: 'file_name' must be a non-empty string")
            continue
        if name in found:
            problems.append(f"{where}: '{name}' is listed twice")
            continue
        found[name] = _keywords(row.get("keywords"), where)
    if problems:
        shown = "\n".join(f"  - {p}" for p in problems[:MAX_LISTED])
        more = f"\n  … and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
        raise InvalidInput(
            f"{metadata} has {len(problems)} problem(s); nothing was answered:\n{shown}{more}"
        )
    return found


def _keywords(given: object, where: str) -> str | InvalidInput | None:
    if given is None:
        return None
    if isinstance(given, str):
        return keywords_text(given) or None
    if isinstance(given, list) and all(isinstance(k, str) for k in given):
        return keywords_text(given) or None
    return InvalidInput(
        f"{where}: 'keywords' must be a list of phrases or a comma-separated text,"
        f" not {type(given).__name__}"
    )
