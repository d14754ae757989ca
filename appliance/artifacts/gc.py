"""Garbage collection: the files of a home that no registry row refers to, found and removed.

What may go is a closed list; nothing else under the home is ever touched:

- blobs (`artifacts/sha256/xx/<sha256>`) that no dataset version's manifest, no file a manifest
  lists and no run artifact names, and the store's temporary files (`artifacts/tmp/*`);
- model folders (`models/<id>`) that no model version names, and staging (`models/.staging/*`);
- backend exports (`exports/<version id>`) of versions that no longer exist;
- dataset folder caches (`datasets/<digest>`) of digests no dataset version has, half-built ones;
- scratch under `tmp/` (a run's `tmp/runs/<run id>` once the run is neither queued nor running)
  and `.demo-*` folders a killed demo left in the home;
- run logs (`logs/runs/<run id>.log`) of runs that no longer exist;
- review inputs (`review/…`) that no review item keeps.

Safe beside a running server: every writer writes its file before the row that names it, so a
young unreferenced file may be an upload whose row is on its way. Only files untouched for the
grace period go (storing content the store already has touches its blob), the rows are read
after the files are listed, and each file's age is checked again just before it goes. A file
removed by a delete is named by the rows that delete removed, and goes whatever its age, except
blobs, which other uploads may share.

Bytes are disk bytes (st_blocks × 512), so a sparse file counts what it holds; a file with hard
links (a dataset cache links its blobs) counts only when every one of its names goes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from appliance.registry import Registry

DEFAULT_GRACE_S = 3600
_SHA256 = re.compile(r"[0-9a-f]{64}")
_RUNNING = ("queued", "running")


@dataclass(frozen=True)
class Garbage:
    path: Path
    kind: str
    """blob, temp, staging, model folder, dataset cache, scratch, run log, review input."""
    bytes: int
    """Disk bytes that removing it gives back (see the module's note on hard links)."""
    graced: bool = True
    """Whether it is checked against the grace period again just before it goes."""


@dataclass
class Plan:
    items: list[Garbage] = field(default_factory=list)
    young_bytes: int = 0
    """Unreferenced, but touched within the grace period: left for a later collection."""
    problems: list[str] = field(default_factory=list)
    """Why some kind of file was not looked at (an unreadable manifest leaves every blob)."""

    @property
    def bytes(self) -> int:
        return sum(g.bytes for g in self.items)

    def by_kind(self) -> dict[str, tuple[int, int]]:
        """kind → (items, bytes)."""
        out: dict[str, tuple[int, int]] = {}
        for g in self.items:
            count, size = out.get(g.kind, (0, 0))
            out[g.kind] = (count + 1, size + g.bytes)
        return dict(sorted(out.items()))


@dataclass(frozen=True)
class Freed:
    bytes: int
    items: int
    young_bytes: int
    """What stays for the grace period (blobs stored recently, which an upload may share)."""
    problems: tuple[str, ...] = ()


class Collector:
    """Finds and removes the garbage of the home at `home`, whose registry is `registry`."""

    def __init__(self, registry: Registry, home: Path, grace_s: float = DEFAULT_GRACE_S):
        self._registry = registry
        self._home = home
        self.grace_s = grace_s

    def plan(self, only: Collection[Path] | None = None, exempt: Collection[Path] = ()) -> Plan:
        """What would go: everything unreferenced and older than the grace period, or, with
        `only`, just those paths; paths in `exempt` go whatever their age."""
        cutoff = time.time() - self.grace_s
        wanted = None if only is None else {Path(p) for p in only}
        exempt = {Path(p) for p in exempt}
        listed = [
            (path, kind)
            for path, kind in self._listed()
            if wanted is None or path in wanted
        ]  # fmt: skip
        refs = _References.read(self._registry, self._home)  # after listing: see the docstring
        plan = Plan(problems=list(refs.problems))
        chosen: list[tuple[Path, str, bool]] = []
        for path, kind in listed:
            if refs.keeps(self._home, path, kind):
                continue
            if path not in exempt and _newest_mtime(path) >= cutoff:
                plan.young_bytes += _disk_bytes_alone(path)
                continue
            chosen.append((path, kind, path not in exempt))
        plan.items = _with_bytes(chosen)
        return plan

    def collect(self, plan: Plan) -> Freed:
        """Remove what `plan` lists (a graced item only if still untouched for the grace
        period); the bytes freed are those of the items removed."""
        cutoff = time.time() - self.grace_s
        freed = removed = 0
        trash = self._home / "artifacts" / "tmp"
        for item in plan.items:
            if item.graced and _newest_mtime(item.path) >= cutoff:
                continue  # touched since it was planned: an upload stored it again
            gone = _remove_blob(item.path, trash, cutoff) if item.kind == "blob" else None
            if gone or (gone is None and _remove(item.path)):
                freed += item.bytes
                removed += 1
        return Freed(freed, removed, plan.young_bytes, tuple(plan.problems))

    def free(self, only: Collection[Path], exempt: Collection[Path] = ()) -> Freed:
        """After a delete has committed: remove those of `only` that nothing refers to now."""
        return self.collect(self.plan(only, exempt))

    def blob(self, sha256: str) -> Path:
        return self._home / "artifacts" / "sha256" / sha256[:2] / sha256

    def dataset_blobs(self, digest: str) -> list[Path]:
        """The blobs a dataset version's row names: its manifest and the files it lists."""
        sha256s = [digest]
        try:
            sha256s += [
                str(f["sha256"]) for f in json.loads(self.blob(digest).read_bytes())["files"]
            ]
        except (OSError, ValueError, KeyError, TypeError):  # gone or unreadable: itself alone
            pass
        return [self.blob(sha256) for sha256 in sha256s]

    def home_path(self, relative: str) -> Path:
        return self._home / relative

    def _listed(self) -> Iterator[tuple[Path, str]]:
        """Every path gc may remove, with its kind (whether it is referenced is decided after)."""
        home = self._home
        for prefix in _entries(home / "artifacts" / "sha256"):
            if prefix.is_dir() and not prefix.is_symlink():
                for blob in _entries(prefix):
                    if _SHA256.fullmatch(blob.name) and blob.name[:2] == prefix.name:
                        yield blob, "blob"
        yield from ((p, "temp") for p in _entries(home / "artifacts" / "tmp"))
        for entry in _entries(home / "models"):
            if entry.name == ".staging":
                yield from ((p, "staging") for p in _entries(entry))
            elif entry.is_dir() and not entry.is_symlink():
                yield entry, "model folder"
        for entry in _entries(home / "datasets"):
            if entry.is_dir() and not entry.is_symlink():
                yield entry, "dataset cache"
        for entry in _entries(home / "exports"):  # appliance/runtimes/backends/export.py
            yield entry, "export"
        for entry in _entries(home / "tmp"):
            if entry.name == "runs" and entry.is_dir():
                yield from ((p, "scratch") for p in _entries(entry))
            elif entry.name.startswith("backup-") and _in_progress(entry):
                continue  # a running backup's snapshot, whatever the grace period asked for
            else:
                yield entry, "scratch"
        yield from ((p, "scratch") for p in _entries(home) if p.name.startswith(".demo-"))
        for log in _entries(home / "logs" / "runs"):
            if log.suffix == ".log" and log.is_file():
                yield log, "run log"
        for entry in _entries(home / "review"):
            if entry.is_dir() and not entry.is_symlink():
                yield entry, "review input"  # judged as a whole when its workspace is gone
                yield from ((p, "review input") for p in _entries(entry))
            else:
                yield entry, "review input"


@dataclass
class _References:
    blobs: set[str] = field(default_factory=set)
    model_folders: set[str] = field(default_factory=set)
    versions: set[str] = field(default_factory=set)
    digests: set[str] = field(default_factory=set)
    runs: set[str] = field(default_factory=set)
    running: set[str] = field(default_factory=set)
    log_paths: set[str] = field(default_factory=set)
    workspaces: set[str] = field(default_factory=set)
    review_files: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)
    blobs_known: bool = True

    @classmethod
    def read(cls, registry: Registry, home: Path) -> _References:
        refs = cls()
        query = registry.query
        refs.digests = {r["digest"] for r in query("SELECT digest FROM dataset_versions")}
        refs.blobs = set(refs.digests)
        refs.blobs |= {r["sha256"] for r in query("SELECT sha256 FROM run_artifacts")}
        store = home / "artifacts" / "sha256"
        for digest in sorted(refs.digests):
            try:
                files = json.loads((store / digest[:2] / digest).read_bytes())["files"]
                refs.blobs |= {str(f["sha256"]) for f in files}
            except (OSError, ValueError, KeyError, TypeError) as exc:
                refs.blobs_known = False
                refs.problems.append(
                    f"the manifest of dataset version {digest[:12]} cannot be read ({exc}); "
                    "no blob is collected until it can (`appliance check` says more)"
                )
        versions = query("SELECT id, path FROM model_versions")
        refs.model_folders = {r["path"] for r in versions}
        refs.versions = {r["id"] for r in versions}
        for row in query("SELECT id, status, log_path FROM runs"):
            refs.runs.add(row["id"])
            if row["status"] in _RUNNING:
                refs.running.add(row["id"])
            if row["log_path"]:
                refs.log_paths.add(str(row["log_path"]))
        refs.workspaces = {r["id"] for r in query("SELECT id FROM workspaces")}
        refs.review_files = {
            r["input_file"]
            for r in query("SELECT input_file FROM review_items WHERE input_file IS NOT NULL")
        }
        return refs

    def keeps(self, home: Path, path: Path, kind: str) -> bool:
        """Whether a row refers to `path` (or, for scratch, a live run uses it)."""
        relative = path.relative_to(home).as_posix()
        if kind == "blob":
            return not self.blobs_known or path.name in self.blobs
        if kind == "model folder":
            return relative in self.model_folders
        if kind == "dataset cache":
            return path.name in self.digests
        if kind == "export":
            return path.is_dir() and not path.is_symlink() and path.name in self.versions
        if kind == "scratch":
            return path.parent.name == "runs" and path.name in self.running
        if kind == "run log":
            return path.stem in self.runs or str(path) in self.log_paths
        if kind == "review input":
            parts = relative.split("/")
            if len(parts) == 2:  # a folder per workspace; a stray file beside them
                return path.is_dir() and parts[1] in self.workspaces
            # A file in a gone workspace's folder goes with the folder, not on its own.
            return parts[1] not in self.workspaces or relative in self.review_files
        return False  # temp, staging: never referenced


def _entries(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []


def _walk(path: Path) -> Iterator[os.stat_result]:
    """lstat of `path` and, for a folder, of everything under it (links are not followed)."""
    try:
        top = path.lstat()
    except FileNotFoundError:
        return
    yield top
    if not path.is_dir() or path.is_symlink():
        return
    for root, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            try:
                yield os.lstat(os.path.join(root, name))
            except FileNotFoundError:
                continue


BACKUP_ALIVE_S = 60
"""A backup touches its snapshot under tmp/ every 10 s (appliance/backup/create.py): one
touched within this long is in progress, and stays even under a shorter `--grace`."""


def _in_progress(work: Path) -> bool:
    return time.time() - _newest_mtime(work) < BACKUP_ALIVE_S


def _newest_mtime(path: Path) -> float:
    return max((s.st_mtime for s in _walk(path)), default=0.0)


def _disk_bytes_alone(path: Path) -> int:
    """Disk bytes of `path` whose every name is under it."""
    return sum(s.st_blocks * 512 for s in _walk(path) if s.st_nlink <= 1 or _is_dir(s))


def _with_bytes(chosen: list[tuple[Path, str, bool]]) -> list[Garbage]:
    """Each item with the disk bytes its removal frees, given all the others go too: a file
    with several names counts once, on the item holding its last name, if every name goes."""
    names: dict[tuple[int, int], int] = {}
    stats: list[list[os.stat_result]] = []
    for path, _, _ in chosen:
        found = list(_walk(path))
        stats.append(found)
        for s in found:
            names[(s.st_dev, s.st_ino)] = names.get((s.st_dev, s.st_ino), 0) + 1
    items, counted = [], set()
    for (path, kind, graced), found in zip(chosen, stats, strict=True):
        size = 0
        for s in found:
            key = (s.st_dev, s.st_ino)
            if key in counted or (not _is_dir(s) and names[key] < s.st_nlink):
                continue
            counted.add(key)
            size += s.st_blocks * 512
        items.append(Garbage(path, kind, size, graced))
    return items


def _is_dir(s: os.stat_result) -> bool:
    return (s.st_mode & 0o170000) == 0o040000


def _remove_blob(path: Path, trash: Path, cutoff: float) -> bool:
    """Move the blob aside, then look at its age again: an upload that touched it just before
    the move needs it, and gets it back; one that touches it after finds none and stores its
    own copy (store.py). So no row can come to name a blob removed here."""
    trash.mkdir(parents=True, exist_ok=True)
    aside = trash / f"gc-{path.name}-{os.getpid()}"
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return False
    if aside.stat().st_mtime >= cutoff:
        os.replace(aside, path)
        return False
    aside.unlink()
    return True


def _remove(path: Path) -> bool:
    try:
        if path.is_dir() and not path.is_symlink():
            for p in [path, *path.rglob("*")]:
                if p.is_dir() and not p.is_symlink():
                    p.chmod(0o755)  # write-once folders are read-only
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        return False
    return True
