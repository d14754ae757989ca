"""Content-addressed file store: each file is kept once, under the sha256 of its bytes.

A file is streamed into a temporary file beside the store (same filesystem), hashed on the way,
flushed to disk and renamed into place; identical content lands on the same name, so storing it
twice costs nothing and a crash leaves at most a temporary file, never a wrong blob. Storing
content that is already there touches its blob: garbage collection (gc.py) leaves recently
touched blobs alone, as an upload whose row is not yet written may be the one that needs it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from appliance.errors import InvalidInput, NotFound

_CHUNK = 1 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Blob:
    sha256: str
    size: int


class ArtifactStore:
    def __init__(self, root: Path):
        self.root = root
        self._blobs = root / "sha256"
        self._tmp = root / "tmp"
        self._blobs.mkdir(parents=True, exist_ok=True)
        self._tmp.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        if not _SHA256.fullmatch(sha256):
            raise InvalidInput(f"'{sha256}' is not a sha256 hex digest")
        return self._blobs / sha256[:2] / sha256

    def has(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def put_file(self, source: Path) -> Blob:
        with source.open("rb") as handle:
            return self.put_stream(handle)

    def put_bytes(self, data: bytes) -> Blob:
        sha256 = hashlib.sha256(data).hexdigest()
        if _touch(self.path(sha256)):
            return Blob(sha256, len(data))
        fd, tmp = tempfile.mkstemp(dir=self._tmp)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            _flush(out)
        return self._publish(Path(tmp), sha256, len(data))

    def put_stream(self, stream: BinaryIO) -> Blob:
        digest = hashlib.sha256()
        size = 0
        fd, tmp = tempfile.mkstemp(dir=self._tmp)
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                _flush(out)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return self._publish(Path(tmp), digest.hexdigest(), size)

    def read_bytes(self, sha256: str) -> bytes:
        try:
            return self.path(sha256).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"artifact {sha256[:12]} is missing from {self._blobs}") from None

    def link_into(self, sha256: str, target: Path) -> None:
        """Place the blob's content at `target`: a hard link when possible, else a copy."""
        source = self.path(sha256)
        if not source.is_file():
            raise NotFound(f"artifact {sha256[:12]} is missing from {self._blobs}")
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)

    def _publish(self, tmp: Path, sha256: str, size: int) -> Blob:
        final = self.path(sha256)
        if _touch(final):
            tmp.unlink(missing_ok=True)
        else:
            final.parent.mkdir(exist_ok=True)
            tmp.chmod(0o444)
            os.replace(tmp, final)
        return Blob(sha256, size)


def _touch(path: Path) -> bool:
    """Whether `path` is stored, touching it if so (gc keeps it then, or puts it back)."""
    try:
        os.utime(path)
    except FileNotFoundError:
        return False
    except OSError:  # not ours to touch: there it is, and the grace period is all it has
        return path.is_file()
    return True


def _flush(handle: BinaryIO) -> None:
    handle.flush()
    os.fsync(handle.fileno())
