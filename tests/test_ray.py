"""Runs trained on a real Ray cluster: a `ray start --head` on loopback (one node, 2 CPUs) that
this module starts and stops (appliance/testing/ray_head.py), the tiny colour recipe, real child processes as Ray drivers, and
the run's version served over real HTTP. Skipped where Ray is not installed."""

from __future__ import annotations

import io
import json
import os
import random
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from click.testing import CliRunner
from serving_harness import free_port, running_server, wait_ready

from appliance.cli import cli
from appliance.datasets.synthetic import ProductAttributes, generate, render
from appliance.errors import InvalidInput, Unavailable
from appliance.runs.executors.ray_cluster import resources
from appliance.runs.launcher import Execution, start_run
from appliance.scheduler.runner import run_job
from appliance.services import Services
from appliance.testing.ray_head import ray_command, ray_head
from tui.screens.runs import summary

COLOUR = Path(__file__).parent / "recipes" / "colour"
needs_ray = pytest.mark.skipif(
    ray_command() is None, reason="ray is not installed (pip install 'appliance[ray]')"
)


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    with ray_head(num_cpus=2) as address:
        yield address


@pytest.fixture
def ads(services: Services, tmp_path: Path) -> str:
    services.workspaces.create("ads")
    services.datasets.add("ads", "photos", generate(tmp_path / "photos", count=80, seed=3).path)
    services.recipes.add("ads", COLOUR)
    return "ads"


def _until(check: Any, what: str, timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, what
        time.sleep(0.1)
    return found


def _worker(services: Services, run_id: str) -> int:
    """The Ray worker's pid, once the run reports training progress from it."""

    def started() -> int | None:
        run = services.runs.get(run_id)
        assert run["status"] in ("queued", "running"), run["error"]
        return run["executor_ref"].get("worker_pid") if run["progress"] else None

    return _until(started, "the Ray task never reported progress")


@needs_ray
def test_a_run_trains_on_ray_with_live_metrics_and_its_lineage(
    services: Services, ads: str, ray_address: str
) -> None:
    seen: list[tuple[str, int, int]] = []

    def poll(run: dict[str, Any]) -> None:
        if run["progress"]:
            progress = json.loads(run["progress"])
            seen.append((run["status"], progress["step"], len(services.runs.metrics(run["id"]))))

    execution = start_run(
        services, ads, "colour", "photos", {"steps": "6", "step_seconds": "0.4", "seed": "2"},
        executor="ray", ray_address=ray_address,
    )  # fmt: skip
    run = execution.wait(poll, interval=0.1)
    assert run["status"] == "succeeded", run["error"]
    # Live: progress and the loss arrived while it still ran, a step at a time.
    assert any(status == "running" and 0 < step < 6 for status, step, _ in seen), seen
    assert [p["step"] for p in services.runs.metrics(run["id"])["loss"]] == [1, 2, 3, 4, 5, 6]
    ref = run["executor_ref"]
    assert run["executor"] == "ray" and ref["address"] == ray_address
    assert ref["job_id"] and ref["worker_pid"] != run["pid"] and ref["node_id"]
    assert not psutil.pid_exists(run["pid"]) or run["pid"] != ref["worker_pid"]
    # The same lineage as a local run, plus where it trained.
    version = services.models.by_run(run["id"])
    assert version is not None and version["dataset_digest"] == run["dataset_digest"]
    assert version["info"]["executor"]["job_id"] == ref["job_id"]
    assert 0 <= version["metrics"]["exact_match"] <= 1 and version["metrics"]["train_seconds"] > 2
    assert services.runs.latest_metrics(run["id"])["ray_cpu_seconds"] > 0
    log = execution.logs()
    assert f"Ray job {ref['job_id']}: asking for 1 CPUs and 0 GPUs" in log
    assert f"training on the Ray worker pid {ref['worker_pid']}" in log and "step 6/6" in log
    assert "registered colour@1" in log
    assert f"trains  on ray at {ray_address} · job {ref['job_id']} · worker pid" in str(
        summary(run, [])
    )  # the TUI's Runs detail
    shown = CliRunner().invoke(cli, ["run", "show", run["id"]])
    assert shown.exit_code == 0 and "executor                 ray" in shown.output
    assert f"job_id={ref['job_id']}" in shown.output


@needs_ray
def test_a_retrain_job_on_ray_is_gated_deployed_and_served(
    services: Services, ads: str, ray_address: str
) -> None:
    job = services.jobs.add(
        ads, "nightly", "retrain", {"cron": "0 0 1 1 *"}, target="colour",
        params={"recipe": "colour", "dataset": "photos", "endpoint": "captions",
                "executor": "ray", "ray_address": ray_address},
    )  # fmt: skip
    outcome = run_job(services, job, "manual")
    assert outcome["status"] == "succeeded" and outcome["detail"]["deployed"] is True, outcome
    run = services.runs.get(outcome["run_id"])
    assert run["executor"] == "ray" and run["job_id"] == job["id"]
    assert services.models.get(ads, "colour@production")["id"] == outcome["detail"]["version_id"]
    photo = io.BytesIO()
    mug = ProductAttributes("mug", "red", "striped", "white", "normal")
    render(mug, rng=random.Random(0)).save(photo, format="PNG")
    with running_server(services) as client:
        wait_ready(client)
        answer = client.post(
            "/v1/endpoints/captions/predict",
            content=photo.getvalue(),
            headers={"content-type": "image/png"},
        )
    assert answer.status_code == 200, answer.text
    assert (answer.json()["model"], answer.json()["version"]) == ("colour", 1)


@needs_ray
def test_cancel_stops_the_ray_task(services: Services, ads: str, ray_address: str) -> None:
    execution = start_run(
        services, ads, "colour", "photos", {"steps": "300", "step_seconds": "0.2"},
        executor="ray", ray_address=ray_address,
    )  # fmt: skip
    worker = _worker(services, execution.run_id)
    run = execution.cancel()
    assert run["status"] == "cancelled" and run["error"] == "cancelled by the user"
    assert not execution.alive()
    _until(lambda: not _alive(worker), "the Ray worker still trains after the cancel", 30)
    assert "the Ray task was stopped" in execution.logs()
    assert services.models.by_run(run["id"]) is None


@needs_ray
def test_a_killed_ray_worker_or_a_crash_there_fails_the_run_with_the_reason(
    services: Services, ads: str, ray_address: str
) -> None:
    execution = start_run(
        services, ads, "colour", "photos", {"steps": "300", "step_seconds": "0.2"},
        executor="ray", ray_address=ray_address,
    )  # fmt: skip
    worker = _worker(services, execution.run_id)
    os.kill(worker, signal.SIGKILL)
    run = execution.wait()
    assert run["status"] == "failed"
    host = run["executor_ref"]["host"]
    assert run["error"].startswith(
        f"the Ray worker training this run died (pid {worker} on {host})"
    )
    assert services.models.by_run(run["id"]) is None
    # A recipe that raises on the worker fails the run with its error, as it would locally.
    crashed = start_run(
        services, ads, "colour", "photos", {"crash": "raise"}, executor="ray",
        ray_address=ray_address,
    ).wait()  # fmt: skip
    assert crashed["status"] == "failed"
    assert crashed["error"] == "RuntimeError: the colour recipe crashed on purpose"
    assert "crashed on purpose" in Path(crashed["log_path"]).read_text()
    # The next task swept the killed worker's scratch folder (its `finally` never ran).
    assert not list(Path(tempfile.gettempdir()).glob(f"appliance-run-{worker}-*"))


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@needs_ray
def test_a_ray_that_does_not_answer_is_one_clear_line(
    services: Services, ads: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed = free_port()  # nothing listens there
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    base = ["run", "start", "ads", "--recipe", "colour", "--dataset", "photos"]
    cases = [
        (["--executor", "ray", "--ray-address", f"127.0.0.1:{closed}"],
         f"error: no Ray cluster answers at 127.0.0.1:{closed} (connection refused); start one "
         "there with `ray start --head`, or give the right --ray-address"),
        (["--executor", "ray"], "error: the ray executor needs the cluster's address"),
        (["--executor", "ray", "--ray-address", "127.0.0.1:port"], "is no Ray address"),
        (["--ray-address", "127.0.0.1:6379"], "a Ray address goes with the ray executor"),
    ]  # fmt: skip
    for args, said in cases:
        started = time.monotonic()
        result = CliRunner().invoke(cli, [*base, *args])
        assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1, result.output
        assert result.output.startswith(said) or said in result.output, result.output
        assert time.monotonic() - started < 10
    with running_server(services) as client:
        body = {"recipe": "colour", "dataset": "photos", "executor": "ray",
                "ray_address": f"127.0.0.1:{closed}"}  # fmt: skip
        answer = client.post("/v1/workspaces/ads/runs", json=body)
        assert answer.status_code == 503, answer.text
        assert f"no Ray cluster answers at 127.0.0.1:{closed}" in answer.json()["error"]
        body["executor"] = "slurm"
        assert client.post("/v1/workspaces/ads/runs", json=body).status_code == 400
    assert services.runs.list("ads") == []  # nothing recorded
    with pytest.raises(Unavailable):
        start_run(services, ads, "colour", "photos", {}, executor="ray",
                  ray_address=f"127.0.0.1:{closed}")  # fmt: skip
    with pytest.raises(InvalidInput, match="executor must be one of local, ray"):
        services.jobs.add(ads, "j", "retrain", {"cron": "0 0 1 1 *"}, target="colour",
                          params={"recipe": "colour", "dataset": "photos", "executor": "slurm"})  # fmt: skip


def test_without_ray_the_option_says_what_to_install(
    services: Services, ads: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    result = CliRunner().invoke(
        cli, ["run", "start", "ads", "--recipe", "colour", "--dataset", "photos", "--executor",
              "ray", "--ray-address", "127.0.0.1:6379"],
    )  # fmt: skip
    assert result.exit_code == 1
    assert result.output == (
        "error: the ray executor needs Ray on this machine: pip install 'appliance[ray]'\n"
    )
    assert services.runs.list("ads") == []


def test_resources_come_from_the_recipes_params() -> None:
    assert resources({}) == {"num_cpus": 1.0, "num_gpus": 0.0}
    assert resources({"threads": 4, "device": "cuda"}) == {"num_cpus": 4.0, "num_gpus": 1.0}
    assert resources({"threads": 0, "device": "cpu"}) == {"num_cpus": 1.0, "num_gpus": 0.0}
    assert resources({"num_cpus": 2, "num_gpus": 0.5, "device": "cuda"}) == {
        "num_cpus": 2.0, "num_gpus": 0.5,
    }  # fmt: skip


def test_executions_attach_by_run_id(services: Services, ads: str) -> None:
    execution = start_run(
        services, ads, "colour", "photos", {"steps": "300", "step_seconds": "0.2"}
    )
    attached = Execution.attach(services, execution.run_id)
    _until(lambda: services.runs.get(execution.run_id)["progress"], "no progress")
    assert attached.alive() and execution.alive()
    assert "training rows" in attached.logs() and attached.logs(tail=1).count("\n") == 1
    assert attached.cancel()["status"] == "cancelled"
    assert not attached.alive() and not execution.alive()
