"""Tar archives both ways: unpacking one a client sent into a fresh folder, refusing anything
that could write outside it or surprise what reads it (absolute paths, `..`, links, devices,
sparse or repeated members) and bounding its total size and file count; and writing a folder as
an uncompressed tar, a block at a time, for a download that never holds a file in memory."""

from __future__ import annotations

import errno
import gzip
import lzma
import os
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from appliance.errors import InvalidInput, TooLarge

MAX_FILES = 200_000
"""Members one archive may hold (a dataset of this many images is a tar of several)."""
CHUNK = 1 << 20
_BLOCK = tarfile.BLOCKSIZE


def extract(archive: Path, target: Path, max_bytes: int, max_files: int = MAX_FILES) -> Path:
    """Unpack `archive` (a tar, gzipped, bzip2'd or xz'd or not) into the new folder `target`;
    returns the folder it holds: `target`, or its one top-level folder when everything is in
    one (`tar -cf x.tar folder`). Raises InvalidInput (400) or TooLarge (413), saying which
    member; what was unpacked stays for the caller to remove."""
    target.mkdir(parents=True)
    seen: set[PurePosixPath] = set()
    total = files = 0
    try:
        with tarfile.open(archive, mode="r|*") as tar:
            for member in tar:
                relative = _safe_name(member)
                if relative in seen:
                    raise InvalidInput(f"the archive holds '{member.name}' twice")
                seen.add(relative)
                files += 1
                if files > max_files:
                    raise TooLarge(f"the archive holds more than {max_files:,} members")
                total += 0 if member.isdir() else member.size
                if total > max_bytes:
                    raise TooLarge(
                        f"the archive unpacks to more than {max_bytes:,} bytes "
                        "(upload_max_bytes); send a smaller folder"
                    )
                try:
                    _unpack(tar, member, target / relative)
                except (FileExistsError, NotADirectoryError, IsADirectoryError):
                    raise InvalidInput(
                        f"the archive's member '{member.name}' clashes with another of its "
                        "members (a file and a folder of the same name)"
                    ) from None
                except OSError as exc:
                    if exc.errno != errno.ENAMETOOLONG:
                        raise
                    raise InvalidInput(
                        f"the archive's member '{member.name[:80]}…' has a name too long for "
                        "a file here"
                    ) from None
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error, lzma.LZMAError) as exc:
        raise InvalidInput(f"the body is not a readable tar archive ({exc})") from None
    if not any(p for p in seen if (target / p).is_file()):
        raise InvalidInput("the archive holds no files")
    entries = list(target.iterdir())
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return target


def _safe_name(member: tarfile.TarInfo) -> PurePosixPath:
    """The member's path inside the target; refuses what is not a plain file or folder, and
    names that leave the target."""
    name = member.name
    if not (member.isreg() or member.isdir()) or member.issparse():
        kind = "a link" if member.issym() or member.islnk() else "a device or special file"
        raise InvalidInput(
            f"the archive's member '{name}' is {kind}: send plain files and folders only"
        )
    path = PurePosixPath(name)
    if not name or "\x00" in name or "\\" in name or path.is_absolute():
        raise InvalidInput(f"the archive's member '{name}' has an absolute or unusable path")
    parts = [p for p in path.parts if p != "."]
    if ".." in parts:
        raise InvalidInput(f"the archive's member '{name}' has '..' in its path")
    if not parts and not member.isdir():
        raise InvalidInput(f"the archive's member '{name}' has no name")
    return PurePosixPath(*parts) if parts else PurePosixPath(".")


def _unpack(tar: tarfile.TarFile, member: tarfile.TarInfo, path: Path) -> None:
    if member.isdir():
        path.mkdir(parents=True, exist_ok=True)
        return
    source = tar.extractfile(member)
    assert source is not None  # a regular file (_safe_name refused the others)
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL|O_NOFOLLOW: a new file, never through a link (none can exist here; belt and braces).
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as out:
        while chunk := source.read(CHUNK):
            out.write(chunk)


def tar_blocks(folder: Path) -> Iterator[bytes]:
    """`folder`'s files and folders as an uncompressed POSIX tar, names relative to it, one
    header or one chunk of a file at a time. Links are left out."""
    for path in sorted(folder.rglob("*")):
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            continue
        info = tarfile.TarInfo(path.relative_to(folder).as_posix())
        stat = path.stat()
        info.mtime = int(stat.st_mtime)
        if path.is_dir():
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            yield info.tobuf(format=tarfile.PAX_FORMAT)
            continue
        info.size, info.mode = stat.st_size, 0o644
        yield info.tobuf(format=tarfile.PAX_FORMAT)
        sent = 0
        with path.open("rb") as file:
            while sent < info.size and (chunk := file.read(min(CHUNK, info.size - sent))):
                sent += len(chunk)
                yield chunk
        if sent != info.size:  # the file shrank while it was sent: the archive is broken
            raise OSError(f"{path} changed while it was sent")
        if info.size % _BLOCK:
            yield b"\0" * (_BLOCK - info.size % _BLOCK)
    yield b"\0" * (2 * _BLOCK)  # the end-of-archive marker
