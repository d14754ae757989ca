"""One run at a time per lane, kept in the registry: a run of a job's lane in another live
process refuses a second start (the CLI says so in one line), and a run a killed process left
`running` is marked failed, not taken for a live one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from appliance.cli import cli
from appliance.errors import Conflict
from appliance.services import Services


@pytest.fixture
def tidy(services: Services) -> dict[str, object]:
    services.workspaces.create("ads")
    services.jobs.add("ads", "tidy", "housekeeping", {"interval_s": 3600}, "", {})
    return services.jobs.get("ads", "tidy")


def begin_in_child(home: Path, job_id: str, then: str) -> subprocess.CompletedProcess[str]:
    """Begin a run of `job_id` in another process, which then exits or kills itself."""
    code = textwrap.dedent(f"""
        import os, signal
        from appliance.services import Services
        services = Services.open(home={str(home)!r})
        print(services.jobs.begin({job_id!r}, "manual"), flush=True)
        {then}
    """)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_a_lane_running_in_a_live_process_refuses_a_second_run(
    services: Services, tidy: dict[str, object]
) -> None:
    first = services.jobs.begin(str(tidy["id"]), "schedule")  # this live process runs it
    child = begin_in_child(services.settings.home, str(tidy["id"]), "")
    assert child.returncode == 1 and "Conflict" in child.stderr
    assert f"job run {first} of its lane" in child.stderr
    result = CliRunner().invoke(cli, ["job", "run-now", "ads", "tidy"])
    assert result.exit_code == 1
    assert f"error: job 'tidy' cannot start: job run {first} of its lane" in result.stderr
    services.jobs.finish(first, "succeeded")
    result = CliRunner().invoke(cli, ["job", "run-now", "ads", "tidy"])
    assert result.exit_code == 0, result.output


def test_a_run_left_running_by_a_killed_process_is_marked_failed(
    services: Services, tidy: dict[str, object]
) -> None:
    child = begin_in_child(
        services.settings.home, str(tidy["id"]), "os.kill(os.getpid(), signal.SIGKILL)"
    )
    assert child.returncode == -signal.SIGKILL
    orphan = child.stdout.strip()
    assert services.jobs.recover_interrupted() == 1
    row = services.jobs.runs(str(tidy["id"]))[0]
    assert (row["id"], row["status"]) == (orphan, "failed")
    assert "interrupted: the process running it" in row["detail"]["error"]
    assert services.jobs.recover_interrupted() == 0
    # And begin itself recovers one it meets, without waiting for a server start.
    second = begin_in_child(
        services.settings.home, str(tidy["id"]), "os.kill(os.getpid(), signal.SIGKILL)"
    ).stdout.strip()
    third = services.jobs.begin(str(tidy["id"]), "manual")
    statuses = {r["id"]: r["status"] for r in services.jobs.runs(str(tidy["id"]))}
    assert statuses[second] == "failed" and statuses[third] == "running"
    with pytest.raises(Conflict, match=f"process {os.getpid()}"):
        services.jobs.begin(str(tidy["id"]), "manual")
