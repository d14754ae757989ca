"""The backup archive: one tar file (gzip-compressed when its name ends in .gz or .tgz) holding
the home's files under their paths in the home, between two JSON members:

- `backup.json` first: what the file is (kind, format version, the appliance version that wrote
  it, when, from which home), so a restore refuses anything else before reading further;
- `manifest.json` last: the same, with every file's path, sha256 and size (written last because
  the digests are taken while the files stream into the archive, each read once).

The archive is written as OUT.partial, flushed to disk, then renamed to OUT, so a crash or a
failed check never leaves a half archive under the name asked for.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import time
from pathlib import Path
from typing import Any, BinaryIO

from appliance.artifacts.folders import fsync_dir
from appliance.errors import Conflict, InvalidInput

FORMAT = 1
"""The archive layout this code writes and reads; a restore refuses a newer one."""
KIND = "appliance-backup"
HEADER = "backup.json"
MANIFEST = "manifest.json"
GZIP_LEVEL = 1
"""Fast: the bulk of a home (photos, safetensors weights) does not compress; the registry does."""


def compressed(path: Path) -> bool:
    return path.name.endswith((".gz", ".tgz"))


def partial_path(out: Path) -> Path:
    return out.with_name(out.name + ".partial")


class ArchiveWriter:
    """Writes the archive at `out` by way of `out.partial`; `finish` publishes it, `abort` (or
    leaving the `with` block on an exception) removes the partial file."""

    def __init__(self, out: Path, header: dict[str, Any]):
        if out.exists():
            raise Conflict(f"{out} already exists; choose another name")
        if not out.parent.is_dir():
            raise InvalidInput(f"the folder {out.parent} does not exist")
        self.out = out
        self.partial = partial_path(out)
        try:
            self._raw: BinaryIO = self.partial.open("xb")
        except FileExistsError:
            raise Conflict(
                f"{self.partial} exists: another backup is writing it, or one was interrupted "
                "(delete it if none runs)"
            ) from None
        self._gzip = gzip.GzipFile(
            filename="", mode="wb", fileobj=self._raw, compresslevel=GZIP_LEVEL, mtime=0
        ) if compressed(out) else None  # fmt: skip
        self._tar = tarfile.TarFile(
            fileobj=self._gzip or self._raw, mode="w", format=tarfile.PAX_FORMAT
        )
        self.files: list[dict[str, Any]] = []
        self.header = {"kind": KIND, "format": FORMAT, **header}
        try:
            self._add_json(HEADER, self.header)
        except BaseException:
            self.abort()
            raise

    def add_file(self, name: str, source: Path, mode: int = 0o644) -> tuple[str, int]:
        """Add the file at `source` as `name`, and return the sha256 and size of the bytes
        added (hashed as they stream in). FileNotFoundError when it is gone."""
        with source.open("rb") as handle:
            stat = os.fstat(handle.fileno())
            info = _info(name, stat.st_size, mode, stat.st_mtime)
            reader = _Hashing(handle)
            self._tar.addfile(info, reader)
        sha256 = reader.digest.hexdigest()
        self.files.append({"path": name, "sha256": sha256, "size": stat.st_size})
        return sha256, stat.st_size

    def finish(self, manifest: dict[str, Any]) -> Path:
        """Write the manifest, flush the archive to disk and rename it to its name."""
        files = sorted(self.files, key=lambda f: f["path"])
        self._add_json(MANIFEST, {**self.header, **manifest, "files": files})
        self._close()
        os.rename(self.partial, self.out)
        fsync_dir(self.out.parent)
        return self.out

    def abort(self) -> None:
        try:
            self._close()
        finally:
            self.partial.unlink(missing_ok=True)

    def __enter__(self) -> ArchiveWriter:
        return self

    def __exit__(self, kind: object, *rest: object) -> None:
        if kind is not None:
            self.abort()

    def _add_json(self, name: str, data: dict[str, Any]) -> None:
        payload = (json.dumps(data, indent=1, sort_keys=True) + "\n").encode()
        self._tar.addfile(_info(name, len(payload), 0o644, time.time()), io.BytesIO(payload))

    def _close(self) -> None:
        if self._raw.closed:
            return
        try:
            self._tar.close()
            if self._gzip is not None:
                self._gzip.close()
            self._raw.flush()
            os.fsync(self._raw.fileno())
        finally:
            self._raw.close()


class _Hashing:
    """A reader that hashes what passes through it."""

    def __init__(self, handle: BinaryIO):
        self._handle = handle
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self.digest.update(data)
        return data


def _info(name: str, size: int, mode: int, mtime: float) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, mode, int(mtime)
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info
