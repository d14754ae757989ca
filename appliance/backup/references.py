"""Every file of the home that a registry (a snapshot of it) refers to, found from its rows:

- stored blobs (`artifacts/sha256/xx/<sha256>`): each dataset version's manifest (its digest)
  and every file that manifest lists, and every run artifact (`run_artifacts.sha256`);
- model version folders (`model_versions.path`, with the digest of their file list and size);
- review inputs (`review_items.input_file`, a photo kept for a person to look at);
- run logs (`runs.log_path`: the file of that name in the home's logs/runs/).

Blobs and model folders are written before the row that names them and never change after, so
every one the snapshot names exists and holds what its digest says, however long after the
snapshot it is read (unless a delete and garbage collection remove it meanwhile: create.py).
Review inputs are not content-addressed (a photo's row has its size only), and one may go after
the snapshot: reviewed, exported or trimmed. Recipes registered by path live outside the home;
they are listed, not copied.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

SHA256 = re.compile(r"[0-9a-f]{64}")
RUN_LOGS = "logs/runs"


@dataclass(frozen=True)
class ModelFolder:
    version_id: str
    ref: str
    """workspace/model@version, for messages."""
    path: str
    """Relative to the home, e.g. models/8a0a8bd07087."""
    digest: str
    size: int


@dataclass(frozen=True)
class ReviewInput:
    item_id: str
    path: str
    """Relative to the home, e.g. review/<workspace id>/<item id>.png."""
    size: int


@dataclass(frozen=True)
class RunLog:
    run_id: str
    path: str
    """Relative to the home, e.g. logs/runs/<run id>.log."""


@dataclass
class References:
    blobs: dict[str, str] = field(default_factory=dict)
    """sha256 → the first thing found that refers to it (for messages)."""
    models: list[ModelFolder] = field(default_factory=list)
    review: list[ReviewInput] = field(default_factory=list)
    logs: list[RunLog] = field(default_factory=list)
    recipes: list[str] = field(default_factory=list)
    """Folders of recipes registered by path, outside the home: not copied."""
    problems: list[str] = field(default_factory=list)
    """What the rows name that cannot be found or read (a missing dataset manifest)."""


def blob_path(home: Path, sha256: str) -> Path:
    return home / blob_name(sha256)


def blob_name(sha256: str) -> str:
    return f"artifacts/sha256/{sha256[:2]}/{sha256}"


def find_references(db: sqlite3.Connection, home: Path) -> References:
    """What the registry open as `db` refers to under `home`. Dataset manifests are read from
    the store (and checked against their digest) to find the files they list."""
    found = References()
    _datasets(db, home, found)
    for run_id, path, sha256 in db.execute(
        "SELECT run_id, path, sha256 FROM run_artifacts ORDER BY run_id, path"
    ):
        _blob(found, sha256, f"artifact {path} of run {run_id}")
    for row in db.execute(
        "SELECT v.id, v.path, v.digest, v.size, v.version, m.name, w.name"
        " FROM model_versions v JOIN models m ON m.id = v.model_id"
        " JOIN workspaces w ON w.id = m.workspace_id ORDER BY v.created_at, v.id"
    ):
        version_id, path, digest, size, version, model, workspace = row
        ref = f"{workspace}/{model}@{version}"
        if not _inside(path, "models"):
            found.problems.append(f"model version {ref}: its path '{path}' is not under models/")
            continue
        found.models.append(ModelFolder(version_id, ref, path, digest, int(size)))
    for item_id, path, size in db.execute(
        "SELECT id, input_file, bytes FROM review_items WHERE input_file IS NOT NULL ORDER BY id"
    ):
        if _inside(path, "review"):
            found.review.append(ReviewInput(item_id, path, int(size)))
        else:
            found.problems.append(f"review item {item_id}: its input '{path}' is not under review/")
    for run_id, log_path in db.execute(
        "SELECT id, log_path FROM runs WHERE log_path IS NOT NULL ORDER BY id"
    ):
        # Recorded as an absolute path, where the home was when the run started: a run's log
        # is logs/runs/<its name> of the home wherever the home is now.
        name = PurePosixPath(str(log_path).replace("\\", "/")).name
        if name not in ("", ".", ".."):
            found.logs.append(RunLog(run_id, f"{RUN_LOGS}/{name}"))
    found.recipes = sorted(
        {path for (path,) in db.execute("SELECT path FROM recipes")
         if not Path(path).is_relative_to(home)}
    )  # fmt: skip
    return found


def _datasets(db: sqlite3.Connection, home: Path, found: References) -> None:
    rows = db.execute(
        "SELECT v.digest, v.version, d.name, w.name FROM dataset_versions v"
        " JOIN datasets d ON d.id = v.dataset_id JOIN workspaces w ON w.id = d.workspace_id"
        " ORDER BY w.name, d.name, v.version"
    ).fetchall()
    for digest, version, name, workspace in rows:
        ref = f"dataset {workspace}/{name}@{version}"
        if not _blob(found, digest, f"the manifest of {ref}"):
            continue
        try:
            data = blob_path(home, digest).read_bytes()
        except FileNotFoundError:
            found.problems.append(f"{blob_name(digest)} (the manifest of {ref}) is missing")
            continue
        if hashlib.sha256(data).hexdigest() != digest:
            continue  # reported when it is archived (or checked), with the other mismatches
        try:
            files = json.loads(data)["files"]
            listed = [(str(f["path"]), str(f["sha256"])) for f in files]
        except (ValueError, KeyError, TypeError) as exc:
            found.problems.append(f"the manifest of {ref} cannot be read: {exc}")
            continue
        for path, sha256 in listed:
            _blob(found, sha256, f"{path} of {ref}")


def _blob(found: References, sha256: object, why: str) -> bool:
    if not isinstance(sha256, str) or not SHA256.fullmatch(sha256):
        found.problems.append(f"{why}: '{sha256}' is not a sha256 digest")
        return False
    found.blobs.setdefault(sha256, why)
    return True


def _inside(path: object, top: str) -> bool:
    """Whether `path` is a plain relative path under the home's `top` folder."""
    if not isinstance(path, str) or not path or "\\" in path:
        return False
    parts = PurePosixPath(path).parts
    return (
        len(parts) >= 2 and parts[0] == top and not PurePosixPath(path).is_absolute()
        and all(p not in ("", ".", "..") for p in parts)
    )  # fmt: skip
