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


def test_a_cli_change_never_bypasses_a_server_it_cannot_reach(services: Services) -> None:
    # The server runs, but the CLI does not find it (its record lost, or it does not answer):
    # before, `deploy` rewrote the deployment "loaded and checked here" while the server kept
    # serving the old version. Now the home's lock tells the CLI a server runs.
    from click.testing import CliRunner

    from appliance.cli import cli
    from appliance.server.record import RECORD_FILE

    services.workspaces.create("ads")
    with serving_in_background(services):
        (services.settings.home / RECORD_FILE).unlink()
        for args in (
            ["deploy", "ads", "captions", "colour@1"],
            ["deploy", "rollback", "ads", "captions"],
        ):
            result = CliRunner().invoke(cli, args)
            assert result.exit_code == 1
            assert result.stderr == (
                f"error: this home's server (pid {os.getpid()}) is running but did not answer, "
                "so nothing was changed: check that it is healthy (its log), or stop it, then "
                "try again\n"
            )
        assert services.deployments.list() == []
    # With no server, the CLI holds the lock while it works: a server starting then waits its
    # turn with a message that names the command.
    with (
        HomeLock(services.settings.home, holder="appliance deploy"),
        pytest.raises(
            Conflict,
            match=r"is busy: pid \d+ runs `appliance deploy` on it; try again when it ends",
        ),
    ):
        HomeLock(services.settings.home)
