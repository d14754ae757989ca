"""The one thread per process that writes to the registry.

As in Datasette, every write is a job handed to this thread through a queue; the thread runs it
inside `BEGIN IMMEDIATE` (so a concurrent writer in another process waits on the busy timeout
instead of failing mid-transaction) and answers on a future. Callers on the writer thread itself
run their job inline, so a job may call other write helpers.

Durability is chosen per write. A durable write (the default) commits with `synchronous=FULL`:
the WAL is fsynced before COMMIT returns, so a power cut cannot lose it: feedback, deployments,
events and every row a client is told is committed. High-rate writes a power cut may lose
without lying to anyone (training metrics, captured predictions, system samples) pass
`durable=False` and commit with `NORMAL`: durable across a crash of the process, not of the
machine. A later durable commit fsyncs the WAL, and so the non-durable commits before it.
About 0.2-0.3 ms more per durable commit on this machine's disk (bench_registry.py).
"""

from __future__ import annotations

import contextvars
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

import sqlite_utils

T = TypeVar("T")
_Job = tuple[Future[Any], Callable[[sqlite_utils.Database], Any], bool]


class Writer:
    def __init__(self, connect: Callable[[], sqlite3.Connection], name: str = "registry-writer"):
        self._connect = connect
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._ready: Future[None] = Future()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()
        self._ready.result()  # surface a failure to open the database here, in the caller

    def run(self, job: Callable[[sqlite_utils.Database], T], durable: bool = True) -> T:
        """Run `job(db)` in one write transaction and return its result (or raise its error)."""
        if threading.current_thread() is self._thread:
            with self._db.atomic():  # nested: a savepoint inside the running transaction
                return job(self._db)
        return self.submit(job, durable).result()

    def submit(self, job: Callable[[sqlite_utils.Database], T], durable: bool = True) -> Future[T]:
        if not self._thread.is_alive():
            raise RuntimeError("the registry writer is closed")
        future: Future[T] = Future()
        # In the submitter's context: the job sees who it acts for (appliance/access/actor.py).
        context = contextvars.copy_context()
        self._jobs.put((future, lambda db: context.run(job, db), durable))
        return future

    def close(self) -> None:
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join()

    def _serve(self) -> None:
        try:
            conn = self._connect()
            self._db = sqlite_utils.Database(conn)
        except BaseException as exc:
            self._ready.set_exception(exc)
            return
        self._ready.set_result(None)
        full: bool | None = None  # the connection's synchronous setting, once set here
        try:
            while (item := self._jobs.get()) is not None:
                future, job, durable = item
                if not future.set_running_or_notify_cancel():
                    continue
                if durable is not full:
                    conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
                    full = durable
                self._run_one(conn, future, job)
        finally:
            conn.close()

    def _run_one(
        self,
        conn: sqlite3.Connection,
        future: Future[Any],
        job: Callable[[sqlite_utils.Database], Any],
    ) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = job(self._db)
                if isinstance(result, sqlite3.Cursor):
                    # A cursor finalized later on the caller's thread would touch this
                    # connection while the writer uses it: close it here, return nothing.
                    result.close()
                    result = None
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except BaseException as exc:
            future.set_exception(exc)
        else:
            future.set_result(result)
