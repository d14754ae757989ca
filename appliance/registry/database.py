"""Opening the registry: connection settings, migrations at open, the writer, and
thread-local readers that close with their thread."""

from __future__ import annotations

import random
import secrets
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlite_utils

from appliance.backup.integrity import check_at_open
from appliance.errors import ApplianceError
from appliance.registry.migrations import MIGRATIONS
from appliance.registry.writer import Writer

T = TypeVar("T")
Rows = list[dict[str, Any]]


class RegistryBusy(ApplianceError):
    """Another process held the registry's write lock for longer than the busy timeout."""

    http_status = 503


def utcnow() -> str:
    """Timestamps are ISO 8601 UTC text with microseconds: sortable as strings, readable as-is."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def first_row(
    db: sqlite_utils.Database, table: str, where: str, args: list[Any]
) -> dict[str, Any] | None:
    """The first row of `table` matching `where`, or None."""
    return next(iter(db.table(table).rows_where(where, args, limit=1)), None)


def new_id() -> str:
    """Random 12-hex-digit ids: short enough to type, 48 bits is plenty for one machine."""
    return secrets.token_hex(6)


def connect(path: Path, busy_timeout_ms: int) -> sqlite3.Connection:
    # isolation_level=None: we issue BEGIN/COMMIT ourselves (sqlite-utils nests as savepoints).
    conn = sqlite3.connect(
        path, timeout=busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False
    )
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    _switch_to_wal(conn, busy_timeout_ms)
    # NORMAL is durable across application crashes in WAL mode; only an OS crash can lose
    # the last commits, never corrupt the file. The writer raises it to FULL for durable
    # writes (writer.py); readers never commit.
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def _switch_to_wal(conn: sqlite3.Connection, busy_timeout_ms: int) -> None:
    """Put the file in WAL mode, retrying while another connection is switching it too.

    On a new file the switch upgrades a shared lock to an exclusive one. When two processes
    open the same new home at once, both hold the shared lock and each wants the other's gone:
    SQLite then answers SQLITE_BUSY at once, without the busy handler, since waiting could
    deadlock. Our statement ending frees our shared lock; the other switch completes, and the
    retry finds the file in WAL mode already."""
    deadline = time.monotonic() + busy_timeout_ms / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(random.uniform(0.005, 0.05))


class Registry:
    """The registry database of one home. Writes go through one writer thread; reads use a
    connection per calling thread (WAL lets them run beside the writer).

    A reader lives in a `threading.local`, which CPython clears when its thread ends, and a
    finalizer closes the connection then: thread pools replace idle workers all the time (anyio's
    after 10 s idle), and readers kept for dead threads were an unbounded leak of file handles
    and page caches. Open readers are never more than the threads alive that have read."""

    def __init__(self, path: Path, busy_timeout_ms: int = 15_000):
        path.parent.mkdir(parents=True, exist_ok=True)
        check_at_open(path)  # a corrupt registry is refused before anything reads or writes it
        self.path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._readers: weakref.WeakSet[_Reader] = weakref.WeakSet()
        self._readers_lock = threading.Lock()
        self._writer = Writer(lambda: connect(path, busy_timeout_ms))
        self.write(_migrate)

    def write(self, job: Callable[[sqlite_utils.Database], T], durable: bool = True) -> T:
        """Run `job(db)` in one `BEGIN IMMEDIATE` transaction on the writer thread; durable
        (the default) survives a power cut once this returns, `durable=False` only a crash of
        the process (see writer.py)."""
        try:
            return self._writer.run(job, durable)
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise RegistryBusy(
                    f"the registry at {self.path} stayed locked by another process for over "
                    f"{self._busy_timeout_ms} ms; try again"
                ) from None
            raise

    def submit(self, job: Callable[[sqlite_utils.Database], T], durable: bool = True) -> Future[T]:
        """Queue `job` for the writer thread without waiting for it (from the event loop)."""
        return self._writer.submit(job, durable)

    @property
    def db(self) -> sqlite_utils.Database:
        """This thread's read connection. Use `write` for anything that changes rows."""
        reader: _Reader | None = getattr(self._local, "reader", None)
        if reader is None:
            reader = _Reader(connect(self.path, self._busy_timeout_ms))
            with self._readers_lock:
                self._readers.add(reader)
            self._local.reader = reader
        return reader.db

    @property
    def open_readers(self) -> int:
        """Read connections open now (one per live thread that has read)."""
        with self._readers_lock:
            return len(self._readers)

    def query(self, sql: str, params: tuple[object, ...] | dict[str, object] = ()) -> Rows:
        """Rows of a read query as dicts."""
        cursor = self.db.execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def close(self) -> None:
        self._writer.close()
        with self._readers_lock:
            readers = list(self._readers)
            self._readers.clear()
        for reader in readers:
            reader.close()
        self._local = threading.local()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Reader:
    """One thread's read connection; closed when the thread's locals are cleared at its end
    (or when the registry closes)."""

    def __init__(self, conn: sqlite3.Connection):
        self.db = sqlite_utils.Database(conn)
        self.close = weakref.finalize(self, conn.close)


def _migrate(db: sqlite_utils.Database) -> None:
    # Runs inside the writer's BEGIN IMMEDIATE: two processes opening a new home at once
    # serialize here, and the second sees the first one's migrations as applied.
    MIGRATIONS.apply(db)
