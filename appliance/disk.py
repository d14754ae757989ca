"""Out of disk, told truthfully: which errors mean the disk (or a quota, or a file size limit)
is full, and how much room the home's filesystem has left. The CLI turns such an error into one
line, the HTTP server into 507 Insufficient Storage, and capture pauses before it happens."""

from __future__ import annotations

import errno
import shutil
import sqlite3
from pathlib import Path

NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
# IOERR_SHMSIZE: the registry's -shm file could not grow (opening it on a full disk).
_SQLITE_NO_SPACE = ("SQLITE_FULL", "SQLITE_IOERR_SHMSIZE")


def out_of_space(exc: BaseException) -> str | None:
    """What ran out, when `exc` (or an error it was raised from) is a full disk, a file size
    limit or a quota; else None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in NO_SPACE_ERRNOS:
            return current.strerror or str(current)
        if (
            isinstance(current, sqlite3.OperationalError)
            and getattr(current, "sqlite_errorname", "") in _SQLITE_NO_SPACE
        ):
            return f"the registry could not write ({current.sqlite_errorname}: {current})"
        current = current.__cause__ or current.__context__
    return None


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged process may still write on the filesystem holding `path`."""
    return shutil.disk_usage(path).free
