"""A one-node Ray head on loopback for tests and benchmarks: `ray start --head --block` in a
process group of its own, so stopping it never touches another Ray on this machine (as
`ray stop` would), and its temp dir (short: Ray's sockets live there) removed afterwards."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from appliance.server.background import free_port


def ray_command() -> str | None:
    """The `ray` script beside this Python, when Ray is installed."""
    return shutil.which("ray", path=str(Path(sys.executable).parent))


@contextmanager
def ray_head(num_cpus: int = 2, timeout_s: float = 90) -> Iterator[str]:
    """Yields the head's GCS address (127.0.0.1:PORT) once it accepts connections."""
    ray = ray_command()
    if ray is None:
        raise RuntimeError("ray is not installed (pip install 'appliance[ray]')")
    port = free_port()
    temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    log = (temp / "head.log").open("w")
    head = subprocess.Popen(
        [ray, "start", "--head", "--block", "--port", str(port), "--node-ip-address", "127.0.0.1",
         "--num-cpus", str(num_cpus), "--num-gpus", "0", "--include-dashboard", "false",
         "--disable-usage-stats", "--temp-dir", str(temp)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if head.poll() is not None:
                raise RuntimeError(f"ray start failed: {(temp / 'head.log').read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Ray head did not start within {timeout_s:.0f} s")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        _stop(head)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def _stop(head: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the group, then SIGKILL: `ray start --block` alone leaves its raylet and
    workers running past a SIGTERM (measured: two processes after 20 s)."""
    try:
        os.killpg(head.pid, signal.SIGTERM)
        head.wait(5)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    try:
        os.killpg(head.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    head.wait(10)
