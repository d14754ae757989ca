"""A consistent copy of a live registry: SQLite's online backup API, from a read connection, in
one step, so the copy is the database as of one moment however hard the server writes
meanwhile (WAL lets the writer go on beside the read). Copying the file itself instead (`cp`,
`tar`) reads pages from different moments: at 3 MB/s under load that gave a corrupt copy two
times in four."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from appliance.backup.integrity import corrupt, problems
from appliance.errors import ApplianceError


def snapshot(registry: Path, into: Path, timeout_ms: int = 15_000) -> None:
    """Copy the registry at `registry` into the new file `into` (one file, rollback-journal
    mode, no WAL beside it) and check the copy with `PRAGMA integrity_check`: a corrupt
    registry is refused (CorruptRegistry), never saved."""
    if not registry.is_file():
        raise ApplianceError(f"there is no registry at {registry}: not a home")
    if into.exists():
        raise ApplianceError(f"{into} already exists")
    source = sqlite3.connect(registry, timeout=timeout_ms / 1000, isolation_level=None)
    with closing(source):
        source.execute("PRAGMA query_only = ON")
        copy = sqlite3.connect(into, isolation_level=None)
        with closing(copy):
            # pages=-1 (all at once): one read transaction on the source, so one moment of it;
            # a copy made in steps restarts each time another connection writes, and under
            # load it may never finish.
            source.backup(copy, pages=-1)
            copy.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
    found = problems(into, full=True, timeout_ms=timeout_ms)
    if found:
        into.unlink()
        raise corrupt(registry, found[0], len(found) - 1)
