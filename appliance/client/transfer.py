"""Folders over HTTP as uncompressed tars: a model or dataset folder packed into a temporary
file for upload, and a version's tar unpacked into the cache, complete or not at all (unpacked
beside its place, then renamed into it)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from appliance.errors import InvalidInput, NotFound


@contextlib.contextmanager
def packed(folder: Path) -> Iterator[IO[bytes]]:
    """`folder`'s files as a tar (names relative to it), in a temporary file open for reading."""
    if not folder.is_dir():
        raise NotFound(f"{folder} is not a folder")
    with tempfile.TemporaryFile(prefix="appliance-upload-") as out:
        # dereference: a link in the folder (a shared tokenizer file) travels as its content
        with tarfile.open(fileobj=out, mode="w", dereference=True) as tar:
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    tar.add(path, arcname=path.relative_to(folder).as_posix(), recursive=False)
        out.seek(0)
        yield out


def unpack_into(chunks: Iterable[bytes], target: Path) -> Path:
    """Write the tar arriving as `chunks` to `target`, which must not exist yet; a crash or a
    broken answer leaves no `target`. Members that would land outside it are refused."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        archive = partial / "files.tar"
        with archive.open("wb") as out:
            for chunk in chunks:
                out.write(chunk)
        folder = partial / "folder"
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(folder, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise InvalidInput(
                f"the server sent a broken archive for {target.name}: {exc}"
            ) from None
        folder.mkdir(exist_ok=True)  # an empty version is a folder all the same
        try:
            os.rename(folder, target)
        except OSError:
            if not target.is_dir():  # another process unpacked the same version first: fine
                raise
        return target
    finally:
        shutil.rmtree(partial, ignore_errors=True)
