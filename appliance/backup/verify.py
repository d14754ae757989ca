"""Checking the files a registry refers to against what it records of them: a stored blob's
bytes against its name (the sha256 of its content), a model version folder's files against the
version's digest (the sha256 of its sorted file list, appliance/artifacts/folders.py) and size.
The backup applies the same tests while it archives (create.py); `appliance check --files`
runs them on a home in place."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from appliance.artifacts.folders import FolderFile, StagedFolder
from appliance.backup.references import ModelFolder, blob_name, blob_path, find_references

_CHUNK = 1 << 20


@dataclass
class Verified:
    blobs: int = 0
    models: int = 0
    review: int = 0
    bytes: int = 0
    problems: list[str] = field(default_factory=list)


def model_files(folder: Path) -> list[Path]:
    """The files of a version folder in the order its digest lists them (as stage_folder
    read them)."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def folder_problem(model: ModelFolder, files: Iterable[FolderFile]) -> str | None:
    """What is wrong with a version folder whose files hashed to `files`, or None."""
    staged = StagedFolder(Path(model.path), tuple(files))
    if staged.digest == model.digest and staged.size == model.size:
        return None
    return (
        f"{model.path} (model version {model.ref}) does not match its digest: its "
        f"{len(staged.files)} files ({staged.size:,} bytes) hash to {staged.digest[:12]}, the "
        f"registry recorded {model.digest[:12]} ({model.size:,} bytes)"
    )


def blob_problem(sha256: str, actual: str, why: str) -> str | None:
    if actual == sha256:
        return None
    return f"{blob_name(sha256)} ({why}) does not match its name: its bytes hash to {actual[:12]}"


def hash_file(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def verify_home(home: Path, registry: Path) -> Verified:
    """Hash every file the registry at `registry` refers to under `home` and report what does
    not match (or is missing). Reads only."""
    db = sqlite3.connect(registry, isolation_level=None)
    with closing(db):
        db.execute("PRAGMA query_only = ON")
        refs = find_references(db, home)
    verified = Verified(problems=list(refs.problems))
    for sha256, why in refs.blobs.items():
        try:
            actual, size = hash_file(blob_path(home, sha256))
        except FileNotFoundError:
            verified.problems.append(f"{blob_name(sha256)} ({why}) is missing")
            continue
        verified.blobs += 1
        verified.bytes += size
        if problem := blob_problem(sha256, actual, why):
            verified.problems.append(problem)
    for model in refs.models:
        folder = home / model.path
        if not folder.is_dir():
            verified.problems.append(f"{model.path} (model version {model.ref}) is missing")
            continue
        files = []
        for path in model_files(folder):
            actual, size = hash_file(path)
            files.append(FolderFile(path.relative_to(folder).as_posix(), actual, size))
            verified.bytes += size
        verified.models += 1
        if problem := folder_problem(model, files):
            verified.problems.append(problem)
    for item in refs.review:
        path = home / item.path
        if not path.is_file():
            verified.problems.append(
                f"{item.path} (the input of review item {item.item_id}) is missing"
            )
            continue
        verified.review += 1
        verified.bytes += path.stat().st_size
    return verified
