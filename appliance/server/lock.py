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


class HomeBusy(Conflict):
    """Another process holds the home's lock: a server, or a CLI command for a moment."""

    def __init__(self, home: Path, pid: str, holder: str):
        self.pid, self.holder = pid, holder
        if holder == "server":
            message = (
                f"another appliance server (pid {pid}) already serves {home}; stop it first, "
                f"or serve another home with --home"
            )
        else:
            message = f"{home} is busy: pid {pid} runs `{holder}` on it; try again when it ends"
        super().__init__(message)


class HomeLock:
    """The home's lock, held by a server (`holder` "server") or, briefly, by a CLI command that
    changes what a server would serve and must know none runs (`holder` names the command)."""

    def __init__(self, home: Path, holder: str = "server"):
        home.mkdir(parents=True, exist_ok=True)
        self.path = home / LOCK_FILE
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid, _, other = os.pread(fd, 200, 0).decode(errors="replace").strip().partition(" ")
            os.close(fd)
            raise HomeBusy(home, pid or "unknown", other or "server") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {holder}\n".encode(), 0)
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

    def __enter__(self) -> HomeLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
