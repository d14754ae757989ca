"""Whether a registry file is sound, by SQLite's own checks, and the refusal of a corrupt one.

A registry copied while the server wrote it (`tar` or `cp` of a running home) can be corrupt in
ways SQLite only notices when it reads the broken page, or never ("Rowid out of order": rows go
missing from queries). `PRAGMA quick_check` reads every page and finds those; `integrity_check`
also compares every index with its table. Both cost time in proportion to the file: quick_check
measured 0.55 ms a MB with the file in the page cache (about 100 ms for a registry of 100,000
captured predictions, 180 MB), more from a cold disk. So an ordinary open (every CLI command,
the Python client) checks a registry of up to OPEN_CHECK_MAX_BYTES (under 10 ms), and the
server's start, `appliance check`, backup and restore check it whatever its size.

Light on purpose: `appliance.registry.database` imports it at every open.
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from appliance.errors import ApplianceError

OPEN_CHECK_MAX_BYTES = 16 * 2**20
"""Registries up to this size (the file and its WAL) are quick-checked at every open."""
BACKUPS_FOLDER = "backups"
"""Where the scheduled backup job writes by default (`<home>/backups`), named here so that the
refusal of a corrupt registry can point at the newest archive."""
_CORRUPT = ("SQLITE_CORRUPT", "SQLITE_NOTADB")


class CorruptRegistry(ApplianceError):
    """The registry file fails SQLite's checks: the message names it, what is wrong, and how to
    restore a backup."""

    http_status = 500


@dataclass(frozen=True)
class Checked:
    path: Path
    check: str
    """'quick_check' or 'integrity_check'."""
    bytes: int
    seconds: float


def check_at_open(path: Path) -> None:
    """What every open of a registry runs first: `quick_check` while the file (with its WAL)
    is at most OPEN_CHECK_MAX_BYTES; a larger one is checked where the time is worth it (the
    server's start, `appliance check`, backup, restore). A missing file is a new home."""
    size = registry_bytes(path)
    if 0 < size <= OPEN_CHECK_MAX_BYTES:
        check_registry(path)


def check_registry(path: Path, full: bool = False, timeout_ms: int = 15_000) -> Checked:
    """Run `PRAGMA quick_check` (`integrity_check` when `full`) on the registry at `path`;
    CorruptRegistry when it finds anything wrong (or SQLite cannot read the file as a
    database). Only reads: it never changes the file."""
    check = "integrity_check" if full else "quick_check"
    if not path.is_file():
        raise ApplianceError(f"there is no registry at {path}: not a home (yet)")
    started = time.perf_counter()
    found = problems(path, full, timeout_ms)
    if found:
        raise corrupt(path, found[0], len(found) - 1)
    return Checked(path, check, registry_bytes(path), time.perf_counter() - started)


def problems(path: Path, full: bool = False, timeout_ms: int = 15_000) -> list[str]:
    """What SQLite's check finds wrong with the database at `path`, one line each; [] when it
    is sound. A file SQLite cannot even read as a database is one problem, its error."""
    try:
        conn = sqlite3.connect(path, timeout=timeout_ms / 1000, isolation_level=None)
        with closing(conn):
            conn.execute("PRAGMA query_only = ON")
            rows = conn.execute(f"PRAGMA {'integrity_check' if full else 'quick_check'}")
            lines = [str(row[0]) for row in rows.fetchall()]
    except sqlite3.DatabaseError as exc:
        if getattr(exc, "sqlite_errorname", "") in _CORRUPT:
            return [str(exc)]
        raise  # busy, locked, out of memory: not a verdict on the file
    if lines == ["ok"]:
        return []
    # The first message starts with a "*** in database main ***" line.
    return [
        " ".join(part for part in line.splitlines() if not part.startswith("***")) for line in lines
    ]


def is_corruption(exc: BaseException) -> bool:
    """Whether a SQLite error says the database file is corrupt (met by a query, not a check)."""
    return isinstance(exc, sqlite3.DatabaseError) and (
        getattr(exc, "sqlite_errorname", "") in _CORRUPT
    )


def corrupt(path: Path, problem: str, more: int = 0) -> CorruptRegistry:
    """The refusal of the corrupt registry at `path`: what is wrong and how to restore."""
    others = f" (and {more} more problem{'s' if more != 1 else ''})" if more else ""
    newest = newest_backup(path.parent / BACKUPS_FOLDER)
    where = f"; the newest backup here is {newest}" if newest else ""
    return CorruptRegistry(
        f"the registry {path} is corrupt: {problem}{others}. Stop using this home and restore "
        f"a backup into a new folder with `appliance restore BACKUP NEWHOME`{where} "
        "(docs/backup.md)"
    )


def newest_backup(folder: Path) -> Path | None:
    """The most recently modified archive in `folder`, if any."""
    try:
        archives = [p for p in folder.iterdir() if p.is_file() and ".tar" in p.name]
    except OSError:
        return None
    archives = [p for p in archives if not p.name.endswith(".partial")]
    return max(archives, key=lambda p: p.stat().st_mtime, default=None)


def registry_bytes(path: Path) -> int:
    """The size of the registry file with its write-ahead log (0 when there is none)."""
    total = 0
    for file in (path, path.with_name(path.name + "-wal")):
        try:
            total += file.stat().st_size
        except FileNotFoundError:
            pass
    return total
