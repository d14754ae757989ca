"""Write-once folders (model versions): copied aside into a staging folder, hashed, flushed,
then renamed into place in one step. A crash before the rename leaves only staging debris,
which is swept later; the registry row is written only after the rename."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

_CHUNK = 1 << 20
STALE_STAGING_SECONDS = 6 * 3600


@dataclass(frozen=True)
class FolderFile:
    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class StagedFolder:
    path: Path
    files: tuple[FolderFile, ...]

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def digest(self) -> str:
        """sha256 of the sorted file list: equal folders have equal digests."""
        manifest = [[f.path, f.sha256, f.size] for f in self.files]
        return hashlib.sha256(json.dumps(manifest, separators=(",", ":")).encode()).hexdigest()


def stage_folder(source: Path, staging: Path, skip: Collection[str] = ()) -> StagedFolder:
    """Copy the regular files of `source` into the new folder `staging`, hashing each; the
    relative paths in `skip` are left out."""
    staging.mkdir(parents=True)
    files = []
    try:
        for src in sorted(p for p in source.rglob("*") if p.is_file() and not p.is_symlink()):
            rel = src.relative_to(source).as_posix()
            if rel in skip:
                continue
            dest = staging / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            files.append(_copy_hashed(src, dest, rel))
        fsync_dir(staging)
    except BaseException:  # a failed copy (a full disk) must not hold its space until the sweep
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return StagedFolder(staging, tuple(files))


def publish_folder(staged: StagedFolder, final: Path) -> None:
    """Make the staged folder read-only and move it to `final` atomically."""
    for f in staged.files:
        (staged.path / f.path).chmod(0o444)
    final.parent.mkdir(parents=True, exist_ok=True)
    os.rename(staged.path, final)
    fsync_dir(final.parent)


def sweep_staging(staging_root: Path, older_than: float = STALE_STAGING_SECONDS) -> int:
    """Remove staging folders left by crashed writers; young ones may belong to a live process."""
    if not staging_root.is_dir():
        return 0
    removed = 0
    cutoff = time.time() - older_than
    for entry in staging_root.iterdir():
        if entry.stat().st_mtime < cutoff:
            _make_writable(entry)
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
    return removed


def _copy_hashed(src: Path, dest: Path, rel: str) -> FolderFile:
    digest = hashlib.sha256()
    size = 0
    with src.open("rb") as inp, dest.open("wb") as out:
        while chunk := inp.read(_CHUNK):
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
        out.flush()
        os.fsync(out.fileno())
    return FolderFile(rel, digest.hexdigest(), size)


def fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in folder `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_writable(root: Path) -> None:
    for p in [root, *root.rglob("*")]:
        if not p.is_symlink():
            p.chmod(0o755 if p.is_dir() else 0o644)
