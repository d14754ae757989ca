"""One server per home. A server holds an exclusive `flock` on `<home>/server.lock` from before
its app is built until it stops, so a second `appliance serve` or `up` on the same home refuses
to start, with the pid of the first, instead of serving beside it and running the same scheduled
jobs twice. The kernel drops the lock when the process dies however it dies (SIGKILL included),
so a stale lock file never blocks a restart."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from appliance.errors import Conflict

LOCK_FILE = "server.lock"


class HomeLock:
    def __init__(self, home: Path):
        home.mkdir(parents=True, exist_ok=True)
        self.path = home / LOCK_FILE
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise Conflict(
                f"another appliance server (pid {holder}) already serves {home}; stop it "
                f"first, or serve another home with --home"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd: int | None = fd

    def release(self) -> None:
        """Idempotent. The file stays (another server may be opening it right now); its pid line
        is informative only, the lock is what counts."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing the descriptor releases the flock
