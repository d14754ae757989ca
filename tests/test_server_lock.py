"""One server per home: a second `appliance serve` on a served home refuses with the first's
pid and starts nothing; after the first is killed (SIGKILL: no clean-up), a new one starts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from serving_harness import free_port, wait_until_up

from appliance.errors import Conflict
from appliance.server.background import serving_in_background
from appliance.server.lock import HomeLock
from appliance.services import Services


def serve(home: Path, port: int) -> subprocess.Popen[str]:
    env = {**os.environ, "APPLIANCE_HOME": str(home)}
    return subprocess.Popen(
        [sys.executable, "-m", "appliance", "serve", "--log-level", "warning", "--port", str(port)],
        env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_a_second_server_on_a_home_refuses_with_the_pid_of_the_first(tmp_path: Path) -> None:
    home = tmp_path / "home"
    port = free_port()
    first = serve(home, port)
    try:
        wait_until_up(first, f"http://127.0.0.1:{port}/v2/health/live")
        second = serve(home, free_port())
        assert second.wait(60) == 1
        assert second.stderr is not None
        err = second.stderr.read()
        assert f"another appliance server (pid {first.pid}) already serves {home}" in err
        assert "Traceback" not in err
        assert first.poll() is None  # the first one is untouched and still serving
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait(30)
    # The kernel released the dead server's lock: a new server starts on the same home.
    port = free_port()
    third = serve(home, port)
    try:
        wait_until_up(third, f"http://127.0.0.1:{port}/v2/health/live")
    finally:
        third.send_signal(signal.SIGTERM)
        third.wait(30)


def test_a_background_server_refuses_a_served_home_and_frees_it_when_it_stops(
    services: Services,
) -> None:
    with serving_in_background(services), pytest.raises(Conflict, match=f"pid {os.getpid()}"):
        HomeLock(services.settings.home)
    HomeLock(services.settings.home).release()  # free again once the block ended
