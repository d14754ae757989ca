"""Taking a backup of a home, while its server runs: a snapshot of the registry first
(snapshot.py), then the files that snapshot refers to (references.py), each checked on its way
into the archive against what the registry records of it (verify.py), then the snapshot itself
and the manifest (archive.py).

Why the order is safe: what the snapshot refers to was complete before its row was written and
does not change afterwards (blobs and model folders are write-once), so reading those files
after the snapshot reads exactly what it refers to. A model folder being registered while the
backup runs is on disk before its row: the snapshot has no row for it, so it is not copied, and
the archive stays consistent with its registry. Review inputs may go after the snapshot (a
person reviewed the item, or the queue trimmed it): the snapshot's row then lets its input go
(input_file NULL, as a review does), and the backup says how many. A blob or model folder can
go only once no row refers to it (a delete, then garbage collection): one the snapshot names
but that went meanwhile fails the backup with "run the backup again", told apart from a file
that is lost while the registry still names it.

A file whose bytes do not match the registry (a blob that does not hash to its name, a model
folder that does not hash to its version's digest) or that is missing fails the backup: every
problem is reported, and no archive is left under the name asked for. The snapshot is kept
under tmp/ while the archive is written, touched every 10 s so that garbage collection (which
removes scratch untouched for gc_grace_seconds, an hour by default) leaves it alone.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from appliance import __version__
from appliance.artifacts.folders import FolderFile
from appliance.backup.archive import ArchiveWriter
from appliance.backup.references import References, blob_name, blob_path, find_references
from appliance.backup.snapshot import snapshot
from appliance.backup.verify import blob_problem, folder_problem, model_files
from appliance.errors import ApplianceError, Conflict, InvalidInput
from appliance.settings import CONFIG_FILE

REGISTRY = "registry.db"
LEFT_OUT = {
    "datasets/": "a cache of dataset versions laid out as folders, rebuilt from the stored "
    "blobs when a run needs one",
    "tmp/, artifacts/tmp/, models/.staging/": "work in progress",
    "files the registry does not refer to": "leftovers of interrupted writes",
    "logs/ other than run logs": "this machine's diagnostics (errors.log)",
    "home-id, server.json, server.lock": "the identity and state of this home's server: a "
    "restored home is another home",
}
COUNTED = (
    "workspaces", "datasets", "dataset_versions", "runs", "models", "model_versions",
    "deployments", "predictions", "feedback", "review_items", "events", "jobs",
)  # fmt: skip


class BackupFailed(ApplianceError):
    """Files of the home do not match what the registry records: nothing was saved."""

    def __init__(self, out: Path, problems: list[str]):
        self.problems = problems
        shown = "; ".join(problems[:3])
        more = f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
        super().__init__(
            f"backup refused, nothing was written to {out}: {len(problems)} "
            f"problem{'s' if len(problems) != 1 else ''}: {shown}{more}"
        )


@dataclass
class BackupResult:
    path: Path
    size: int
    """Bytes of the archive file."""
    content_bytes: int
    files: int
    blobs: int
    models: int
    review: int
    logs: int
    counts: dict[str, int]
    seconds: float
    review_gone: int = 0
    """Review inputs that went between the snapshot and their copy (let go in the archive)."""
    recipes_outside: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {**vars(self), "path": str(self.path)}


def create_backup(
    home: Path, out: Path, logs: bool = True, timeout_ms: int = 15_000
) -> BackupResult:
    """Write a backup of `home` to the archive `out` (which must not exist; gzip when its
    name ends in .gz or .tgz). `logs`: include the run logs the registry names."""
    started = time.perf_counter()
    home, out = home.absolute(), out.absolute()
    if out.exists():  # before the snapshot: say it at once (the writer checks again)
        raise Conflict(f"{out} already exists; choose another name")
    if not out.parent.is_dir():
        raise InvalidInput(f"the folder {out.parent} does not exist")
    work = home / "tmp" / f"backup-{datetime.now(UTC):%Y%m%dT%H%M%S%f}"
    work.mkdir(parents=True)
    try:
        copy = work / REGISTRY
        taken_at = _now()
        snapshot(home / REGISTRY, copy, timeout_ms)
        db = sqlite3.connect(copy, isolation_level=None)
        with closing(db):
            refs = find_references(db, home)
            header = {
                "appliance_version": __version__, "created_at": taken_at, "home": str(home),
            }  # fmt: skip
            with ArchiveWriter(out, header) as archive:
                result = _archive(archive, home, refs, logs, _KeepAlive(copy))
                if result.review_gone_ids:
                    db.executemany(
                        "UPDATE review_items SET input_file = NULL, bytes = 0 WHERE id = ?",
                        [(i,) for i in result.review_gone_ids],
                    )
                counts = _counts(db)
                migrations = [r[0] for r in db.execute(
                    "SELECT name FROM _sqlite_migrations ORDER BY applied_at, name"
                )]  # fmt: skip
                db.close()
                try:
                    archive.add_file(REGISTRY, copy)
                except FileNotFoundError:
                    raise ApplianceError(
                        f"the registry's snapshot {copy} went while the backup ran (`appliance gc`"
                        " with a --grace under a minute?); nothing was written: run it again"
                    ) from None
                problems = refs.problems + result.problems
                if result.missing:
                    problems += _missing(home, result.missing, timeout_ms)
                if problems:
                    raise BackupFailed(out, problems)
                archive.finish({
                    "registry": {"counts": counts, "migrations": migrations},
                    "left_out": LEFT_OUT,
                    "recipes_outside_home": refs.recipes,
                    "review_inputs_gone": len(result.review_gone_ids),
                    "logs": logs,
                })  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return BackupResult(
        path=out, size=out.stat().st_size,
        content_bytes=sum(f["size"] for f in archive.files), files=len(archive.files),
        blobs=result.blobs, models=result.models, review=result.review, logs=result.logs,
        counts=counts, seconds=round(time.perf_counter() - started, 3),
        review_gone=len(result.review_gone_ids), recipes_outside=refs.recipes,
    )  # fmt: skip


@dataclass
class _Archived:
    blobs: int = 0
    models: int = 0
    review: int = 0
    logs: int = 0
    problems: list[str] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)
    """(blob sha256 or model version id, what to say) of referenced files not found."""
    review_gone_ids: list[str] = field(default_factory=list)


def _archive(
    archive: ArchiveWriter, home: Path, refs: References, logs: bool, keep: _KeepAlive
) -> _Archived:
    done = _Archived()
    for sha256, why in sorted(refs.blobs.items()):
        keep.tick()
        try:
            actual, _ = archive.add_file(blob_name(sha256), blob_path(home, sha256), 0o444)
        except FileNotFoundError:
            done.missing.append((sha256, f"{blob_name(sha256)} ({why})"))
            continue
        done.blobs += 1
        if problem := blob_problem(sha256, actual, why):
            done.problems.append(problem)
    for model in refs.models:
        folder, files = home / model.path, []
        try:
            paths = model_files(folder)
            if not paths:
                raise FileNotFoundError(folder)
            for path in paths:
                keep.tick()
                relative = path.relative_to(folder).as_posix()
                sha256, size = archive.add_file(f"{model.path}/{relative}", path, 0o444)
                files.append(FolderFile(relative, sha256, size))
        except FileNotFoundError:
            done.missing.append((model.version_id, f"{model.path} (model version {model.ref})"))
            continue
        done.models += 1
        if problem := folder_problem(model, files):
            done.problems.append(problem)
    for item in refs.review:
        keep.tick()
        try:
            archive.add_file(item.path, home / item.path)
        except FileNotFoundError:  # reviewed, exported or trimmed since the snapshot
            done.review_gone_ids.append(item.item_id)
            continue
        done.review += 1
    if logs:
        for log in refs.logs:
            keep.tick()
            try:
                archive.add_file(log.path, home / log.path)
            except FileNotFoundError:
                continue  # a run's log is a convenience: the run's record is in the registry
            done.logs += 1
    settings = home / CONFIG_FILE
    if settings.is_file():
        archive.add_file(CONFIG_FILE, settings, 0o600)
    return done


def _missing(home: Path, missing: list[tuple[str, str]], timeout_ms: int) -> list[str]:
    """Say of each referenced file not found whether the live registry still refers to it
    (damage: a file lost) or no longer does (deleted, and collected, after the snapshot)."""
    live = sqlite3.connect(home / REGISTRY, timeout=timeout_ms / 1000, isolation_level=None)
    with closing(live):
        live.execute("PRAGMA query_only = ON")
        now = find_references(live, home)
    still = set(now.blobs) | {m.version_id for m in now.models}
    return [
        f"{what} is missing" if key in still
        else f"{what} was deleted after the snapshot (a delete ran meanwhile): run the backup again"
        for key, what in missing
    ]  # fmt: skip


class _KeepAlive:
    """Touches the snapshot now and then: a long backup must not look like abandoned scratch
    under tmp/ to the garbage collector, which removes what is untouched for its grace period
    (gc_grace_seconds, an hour by default)."""

    def __init__(self, path: Path, every_s: float = 10):
        self._path, self._every = path, every_s
        self._last = time.monotonic()

    def tick(self) -> None:
        if time.monotonic() - self._last >= self._every:
            os.utime(self._path)
            self._last = time.monotonic()


def _counts(db: sqlite3.Connection) -> dict[str, int]:
    return {
        table: int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]) for table in COUNTED
    }


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
