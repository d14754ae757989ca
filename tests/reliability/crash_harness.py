"""What the crash scenarios share: a real `appliance serve` process, an integrity check that
goes around the appliance's own code and a small tmpfs."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
START_SECONDS = 60


def start_server(home: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    """`python -m appliance serve` on `home`; returns once /v2/health/ready answers 200.
    Its stderr goes to `log` (a pipe nobody reads could fill and stall it)."""
    env = {**os.environ, "APPLIANCE_HOME": str(home), "APPLIANCE_PORT": str(port)}
    with log.open("ab") as stderr:
        server = subprocess.Popen(
            [sys.executable, "-m", "appliance", "serve", "--log-level", "warning"],
            env=env, cwd=REPO, stderr=stderr,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + START_SECONDS
    while True:
        try:
            if httpx.get(f"{base}/v2/health/ready", timeout=5).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if server.poll() is not None or time.time() > deadline:
            stop_server(server)
            raise AssertionError(f"the server did not become ready:\n{log.read_text()}")
        time.sleep(0.1)


def stop_server(server: subprocess.Popen[bytes]) -> int:
    """SIGTERM, then SIGKILL if it lingers; the exit status."""
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
    return server.wait(30)


def integrity(registry: Path) -> str:
    """`PRAGMA integrity_check` and `foreign_key_check` on a plain connection: 'ok' or why not."""
    conn = sqlite3.connect(registry)
    try:
        checked = "; ".join(str(r[0]) for r in conn.execute("PRAGMA integrity_check"))
        dangling = conn.execute("PRAGMA foreign_key_check").fetchall()
    finally:
        conn.close()
    return checked if not dangling else f"{checked}; dangling references: {dangling}"


@contextmanager
def small_tmpfs(tmp_path: Path, mb: int) -> Iterator[Path]:
    """A fresh tmpfs of `mb` MB under `tmp_path`, mounted for the block (the test is skipped
    where it cannot be mounted: not Linux, or not root)."""
    mount = shutil.which("mount")
    if sys.platform != "linux" or mount is None:
        pytest.skip("a small tmpfs needs Linux and mount(8)")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        [mount, "-t", "tmpfs", "-o", f"size={mb}m", "tmpfs", str(disk)],
        capture_output=True, text=True,
    )  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
