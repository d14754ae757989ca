"""The scheduler and the closed loop, with real APScheduler, real training children (the tiny
colour recipe), real SQLite and, where traffic matters, the real server over loopback."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psutil
import pytest
from serving_harness import free_port, running_server, wait_ready, wait_until_up

from appliance.datasets.synthetic import generate
from appliance.models.promotion import promote
from appliance.scheduler.runner import run_job
from appliance.scheduler.service import Scheduler
from appliance.services import Services
from appliance.serving.options import DeployOptions
from appliance.serving.service import Serving

COLOUR = Path(__file__).parent / "recipes" / "colour"
FAR_AWAY = {"cron": "0 0 1 1 *"}  # once a year: only triggers and run-now start these


@pytest.fixture
def ads(services: Services, tmp_path: Path) -> Path:
    """Workspace `ads` with dataset photos@1 (from the returned folder) and the colour recipe."""
    services.workspaces.create("ads")
    folder = generate(tmp_path / "photos", count=200, seed=3).path
    services.datasets.add("ads", "photos", folder)
    services.recipes.add("ads", COLOUR)
    return folder


def retrain_job(services: Services, name: str = "retrain", **params: object) -> dict:
    return services.jobs.add(
        "ads", name, "retrain", FAR_AWAY, target="colour",
        params={"recipe": "colour", "dataset": "photos", **params},
    )  # fmt: skip


@contextmanager
def scheduler_running(services: Services, serving: Serving | None = None) -> Iterator[Scheduler]:
    """A Scheduler on its own event loop thread, as the server runs it."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    scheduler = Scheduler(services, serving)
    asyncio.run_coroutine_threadsafe(scheduler.start(), loop).result(30)
    try:
        yield scheduler
    finally:
        loop.call_soon_threadsafe(scheduler.stop)
        time.sleep(0.2)
        scheduler.shutdown()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def runs_of(services: Services, job: dict) -> list[dict]:
    return services.registry.query(
        "SELECT id, status, cause FROM runs WHERE job_id = ? ORDER BY created_at", (job["id"],)
    )


def test_jobs_are_rows_and_the_scheduler_is_rebuilt_from_them(
    ads: Path, isolated_home: Path
) -> None:
    with Services.open(home=isolated_home) as services:
        services.jobs.add("ads", "nightly", "retrain", {"cron": "0 3 * * *"}, target="colour",
                          params={"recipe": "colour", "dataset": "photos"})  # fmt: skip
        services.jobs.add("ads", "tidy", "housekeeping", {"interval_s": 3600})
        with scheduler_running(services) as scheduler:
            first = {j["name"]: j["next_run_time"] for j in scheduler.scheduled()}
    assert set(first) == {"ads/nightly", "ads/tidy"}
    assert first["ads/nightly"].hour == 3 and first["ads/nightly"].minute == 0
    with Services.open(home=isolated_home) as services:  # a restart: a new process's view
        services.jobs.set_enabled("ads", "tidy", False)
        with scheduler_running(services) as scheduler:
            again = {j["name"] for j in scheduler.scheduled()}
            services.jobs.set_enabled("ads", "tidy", True)  # picked up without a restart
            deadline = time.time() + 10
            while "ads/tidy" not in {j["name"] for j in scheduler.scheduled()}:
                assert time.time() < deadline
                time.sleep(0.1)
    assert again == {"ads/nightly"}


def test_one_dataset_change_triggers_exactly_one_retrain(
    services: Services, ads: Path, tmp_path: Path
) -> None:
    retrain = retrain_job(services)
    services.jobs.add("ads", "watch", "dataset_watch", {"interval_s": 1}, target="photos",
                      params={"source": str(ads), "retrain": "retrain"})  # fmt: skip
    with scheduler_running(services) as scheduler:
        time.sleep(2.5)  # a few looks at an unchanged folder
        assert runs_of(services, retrain) == []
        more = generate(tmp_path / "more", count=5, seed=9).path
        lines = (more / "metadata.jsonl").read_text().splitlines()
        for line in lines:
            row = json.loads(line)
            shutil.copyfile(more / row["file_name"], ads / f"new-{row['file_name']}")
            with (ads / "metadata.jsonl").open("a") as handle:
                handle.write(json.dumps({**row, "file_name": f"new-{row['file_name']}"}) + "\n")
        deadline = time.time() + 60
        while not runs_of(services, retrain) or not scheduler.wait_idle(0.1):
            assert time.time() < deadline, "no retrain after the dataset changed"
            time.sleep(0.3)
        time.sleep(2.5)  # more looks at the (now unchanged) folder start nothing
        assert scheduler.wait_idle(60)
    runs = runs_of(services, retrain)
    assert [(r["status"], r["cause"]) for r in runs] == [("succeeded", "dataset:photos@2")]
    watch_runs = services.jobs.runs(services.jobs.get("ads", "watch")["id"], 100)
    assert sum(r["detail"].get("changed", False) for r in watch_runs) == 1


def test_concurrent_triggers_coalesce_into_one_follow_up(services: Services, ads: Path) -> None:
    retrain = retrain_job(services, train={"steps": 4, "step_seconds": 0.3})
    with scheduler_running(services) as scheduler:
        started = [scheduler.request(retrain, f"alert:{i}") for i in range(5)]
        assert started == [True, False, False, False, False]
        assert scheduler.wait_idle(120)
    runs = runs_of(services, retrain)
    # The first trigger ran; the four that came while it trained became one follow-up run,
    # with the last trigger's cause.
    assert [(r["status"], r["cause"]) for r in runs] == [
        ("succeeded", "alert:0"), ("succeeded", "alert:4"),
    ]  # fmt: skip
    assert scheduler.coalesced == 3


def test_a_worse_model_is_registered_but_not_deployed(services: Services, ads: Path) -> None:
    first = run_job(services, retrain_job(services, "good", endpoint="captions"), "manual")
    assert first["status"] == "succeeded" and first["detail"]["deployed"] is True
    assert (
        services.deployments.get("ads", "captions")["model_version_id"]
        == first["detail"]["version_id"]
    )
    worse = retrain_job(services, "worse", endpoint="captions", train={"rank": 9})
    outcome = run_job(services, worse, "manual")
    assert outcome["status"] == "succeeded" and outcome["detail"]["deployed"] is False, outcome[
        "detail"
    ]
    assert "gate" in outcome["detail"] and "worse" in outcome["detail"]["gate"].lower()
    assert services.models.get("ads", "colour@production")["version"] == 1
    assert (
        services.deployments.get("ads", "captions")["model_version_id"]
        == first["detail"]["version_id"]
    )
    assert len(services.models.versions("ads", "colour")) == 2  # registered all the same


def test_approve_policy_waits_for_a_person(services: Services, ads: Path) -> None:
    from appliance.access.actor import acting_as
    from appliance.monitoring.report import dora
    from appliance.scheduler.runner import approve

    job = retrain_job(services, "careful", endpoint="captions", policy="approve")
    pending = run_job(services, job, "manual")
    assert pending["status"] == "awaiting_approval"
    assert services.deployments.list("ads") == []
    assert [r["id"] for r in services.jobs.awaiting_approval("ads")] == [pending["id"]]
    with acting_as("dee"):  # who approves is the author of the approval and of the deploy
        done = approve(services, pending["id"])
    assert done["status"] == "succeeded" and done["detail"]["deployed"] is True
    assert services.deployments.get("ads", "captions")["endpoint"] == "captions"
    authors = dora(services, "ads")["authors"]
    assert authors["dee"] == {"deployments": 1, "promotions": 0, "approvals": 1}
    assert authors["local"]["promotions"] == 1  # the job's gate, on the box


def test_a_version_failing_in_service_is_rolled_back_within_the_watch(
    services: Services, ads: Path
) -> None:
    version = services.models.by_run(
        run_job(services, retrain_job(services, "base"), "manual")["run_id"]
    )
    assert version is not None
    promote(services, "ads", "colour@1")
    Serving(services).deploy("ads", "captions", "colour@1", DeployOptions())
    retrain_job(services, "broken", endpoint="captions", watch_s=30, train={"broken": 1})
    photo = (
        ads / json.loads((ads / "metadata.jsonl").read_text().splitlines()[0])["file_name"]
    ).read_bytes()
    with running_server(services) as client:
        wait_ready(client)
        for _ in range(10):  # the baseline: the healthy version's traffic
            assert (
                client.post(
                    "/v1/endpoints/captions/predict",
                    content=photo,
                    headers={"content-type": "image/png"},
                ).status_code
                == 200
            )
        started = client.post("/v1/workspaces/ads/jobs/broken/run")
        assert started.status_code == 202, started.text
        job_run = started.json()["job_run"]
        deadline = time.time() + 90
        while True:
            row = services.registry.query("SELECT status FROM job_runs WHERE id = ?", (job_run,))[0]
            if row["status"] != "running":
                break
            assert time.time() < deadline, "the watch never ended"
            client.post(
                "/v1/endpoints/captions/predict",
                content=photo,
                headers={"content-type": "image/png"},
            )
            time.sleep(0.05)
        after = client.post(
            "/v1/endpoints/captions/predict", content=photo, headers={"content-type": "image/png"}
        )
    outcome = services.jobs.runs(services.jobs.get("ads", "broken")["id"])[0]
    assert outcome["status"] == "failed" and outcome["detail"]["rolled_back"] is True
    assert "error rate" in outcome["detail"]["watch"]["reasons"][0]
    assert after.status_code == 200 and after.json()["version"] == 1
    kinds = [e["kind"] for e in services.events.list(services.workspaces.get("ads")["id"])]
    assert kinds.index("rolled_back") < kinds.index("watch_failed")  # newest first
    # The gate had moved production to the broken version: it names the serving one again.
    assert kinds.index("watch_failed") < kinds.index("promoted")
    assert services.models.aliases("ads", "colour")["production"] == 1
    assert outcome["detail"]["production_restored"] == "colour@1"


def test_a_failing_job_is_recorded_and_the_next_one_runs(services: Services, ads: Path) -> None:
    job = services.jobs.add("ads", "watch-missing", "dataset_watch", FAR_AWAY, target="photos",
                            params={"source": "/nonexistent/folder", "retrain": "x"})  # fmt: skip
    outcome = run_job(services, job, "manual")
    assert outcome["status"] == "failed" and "does not exist" in outcome["detail"]["error"]
    assert (
        run_job(services, services.jobs.add("ads", "tidy", "housekeeping", FAR_AWAY), "manual")[
            "status"
        ]
        == "succeeded"
    )


def _serve(home: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "APPLIANCE_HOME": str(home), "APPLIANCE_PORT": str(port)}
    server = subprocess.Popen(
        [sys.executable, "-m", "appliance", "serve", "--log-level", "warning"], env=env
    )
    wait_until_up(server, f"http://127.0.0.1:{port}/v2/health/live")
    return server


def test_kill_9_during_training_then_restart_fails_the_run_and_goes_on(
    services: Services, ads: Path, isolated_home: Path
) -> None:
    retrain_job(services, "slow", train={"steps": 60, "step_seconds": 0.5})
    services.jobs.add("ads", "tidy", "housekeeping", FAR_AWAY)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = _serve(isolated_home, port)
    try:
        assert httpx.post(f"{base}/v1/workspaces/ads/jobs/slow/run").status_code == 202
        deadline = time.time() + 60
        while True:
            rows = services.registry.query(
                "SELECT id, pid, status FROM runs WHERE cause = 'manual'"
            )
            if rows and rows[0]["status"] == "running":
                break
            assert time.time() < deadline, "training never started"
            time.sleep(0.1)
        run = rows[0]
        os.kill(server.pid, signal.SIGKILL)
        server.wait(30)
        deadline = time.time() + 10  # the child dies with the appliance: no orphan training
        while (
            psutil.pid_exists(run["pid"])
            and psutil.Process(run["pid"]).status() != psutil.STATUS_ZOMBIE
        ):
            assert time.time() < deadline, "the training child outlived the appliance"
            time.sleep(0.1)
        server = _serve(isolated_home, port)
        deadline = time.time() + 30
        while services.runs.get(run["id"])["status"] != "failed":
            assert time.time() < deadline, "the restart did not fail the orphaned run"
            time.sleep(0.1)
        assert "ended without reporting" in services.runs.get(run["id"])["error"]
        started = httpx.post(f"{base}/v1/workspaces/ads/jobs/tidy/run")
        assert started.status_code == 202, started.text
        deadline = time.time() + 30
        while services.jobs.runs(services.jobs.get("ads", "tidy")["id"])[0]["status"] == "running":
            assert time.time() < deadline
            time.sleep(0.1)
        assert (
            services.jobs.runs(services.jobs.get("ads", "tidy")["id"])[0]["status"] == "succeeded"
        )
    finally:
        server.terminate()
        server.wait(30)


def test_a_run_missed_while_down_runs_once_at_start_within_grace(
    services: Services, ads: Path
) -> None:
    recent = services.jobs.add("ads", "recent", "housekeeping", {"interval_s": 60})
    ancient = services.jobs.add("ads", "ancient", "housekeeping", {"interval_s": 60})

    def ran_at(job: dict, seconds_ago: int) -> None:
        started = datetime.now(UTC) - timedelta(seconds=seconds_ago)
        services.registry.write(lambda db: db.table("job_runs").insert({
            "id": f"old-{job['name']}", "job_id": job["id"], "cause": "schedule",
            "status": "succeeded", "detail": "{}",
            "started_at": started.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }))  # fmt: skip

    ran_at(recent, 90)  # due 30 s ago: within the default hour of grace
    ran_at(ancient, 2 * 3600)  # due long ago: skipped, the schedule simply goes on
    with scheduler_running(services) as scheduler:
        assert scheduler.wait_idle(30)
    causes = {
        j["name"]: [r["cause"] for r in services.jobs.runs(j["id"])] for j in (recent, ancient)
    }
    assert causes == {"recent": ["missed", "schedule"], "ancient": ["schedule"]}


def test_batch_predict_describes_a_folder_into_jsonl(
    services: Services, ads: Path, tmp_path: Path
) -> None:
    run_job(services, retrain_job(services, "base", endpoint="captions"), "manual")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for row in [json.loads(line) for line in (ads / "metadata.jsonl").read_text().splitlines()[:5]]:
        shutil.copyfile(ads / row["file_name"], inbox / row["file_name"])
    (inbox / "notes.png").write_bytes(b"not a picture")
    job = services.jobs.add("ads", "describe", "batch_predict", FAR_AWAY, target="captions",
                            params={"source": str(inbox), "output": str(tmp_path / "out")})  # fmt: skip
    outcome = run_job(services, job, "manual")
    assert outcome["status"] == "succeeded", outcome["detail"]
    assert outcome["detail"]["described"] == 5 and outcome["detail"]["unreadable"] == 1
    lines = [
        json.loads(line) for line in Path(outcome["detail"]["output"]).read_text().splitlines()
    ]
    described = [line for line in lines if "description" in line]
    assert len(described) == 5 and all(d["description"].endswith("product") for d in described)
    assert all((d["model"], d["version"]) == ("colour", 1) for d in described)
    assert [line["file"] for line in lines if "error" in line] == ["notes.png"]
    assert not list((tmp_path / "out").glob("*.partial"))


def test_batch_predict_gives_each_photo_its_metadata_keywords(
    services: Services, ads: Path, tmp_path: Path
) -> None:
    run_job(services, retrain_job(services, "base", endpoint="captions"), "manual")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    names = [json.loads(line)["file_name"] for line in
             (ads / "metadata.jsonl").read_text().splitlines()[:6]]  # fmt: skip
    for name in names:
        shutil.copyfile(ads / name, inbox / name)
    rows = [
        {"file_name": names[0], "text": "x", "keywords": ["Acme", "size 42"]},  # a list
        {"file_name": names[1], "keywords": "vintage, like new"},  # a seller's text
        {"file_name": names[2], "keywords": ["size 42"]},  # one phrase of two words
        {"file_name": names[3], "text": "no keywords in this row"},
        {"file_name": names[4], "keywords": 42},  # neither: that photo is an error line
        {"file_name": "gone.png", "keywords": "acme"},  # names no file: nothing to answer
    ]  # names[5] has no row at all
    (inbox / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    job = services.jobs.add("ads", "describe", "batch_predict", FAR_AWAY, target="captions",
                            params={"source": str(inbox), "output": str(tmp_path / "out")})  # fmt: skip
    outcome = run_job(services, job, "manual")
    assert outcome["status"] == "succeeded", outcome["detail"]
    # metadata.jsonl describes the folder: it is not answered as an unreadable photo.
    assert outcome["detail"]["described"] == 5 and outcome["detail"]["unreadable"] == 1
    lines = {
        line["file"]: line
        for line in map(json.loads, Path(outcome["detail"]["output"]).read_text().splitlines())
    }
    assert sorted(lines) == sorted(names)
    # The colour model answers "<first word of its keywords> product" when given keywords.
    assert lines[names[0]]["keywords"] == ["acme", "size 42"]
    assert lines[names[0]]["description"] == "acme, product"
    assert lines[names[1]]["keywords"] == ["vintage", "like new"]
    assert lines[names[1]]["description"] == "vintage, product"
    assert lines[names[2]]["keywords"] == ["size 42"]  # not "size" and "42"
    assert lines[names[2]]["description"] == "size product"
    plain = {lines[n]["description"] for n in (names[3], names[5])}
    assert len(plain) == 1 and all("keywords" not in lines[n] for n in (names[3], names[5]))
    assert plain.pop().split()[0] not in {"acme,", "vintage,", "size"}
    assert "line 5" in lines[names[4]]["error"] and "keywords" in lines[names[4]]["error"]

    # A metadata.jsonl that is not JSON lines is refused whole, before anything is answered.
    (inbox / "metadata.jsonl").write_text(json.dumps(rows[0]) + "\n{not json\n")
    before = sorted((tmp_path / "out").iterdir())
    refused = run_job(services, job, "manual")
    assert refused["status"] == "failed"
    assert "metadata.jsonl line 2: not valid JSON" in refused["detail"]["error"]
    assert "nothing was answered" in refused["detail"]["error"]
    assert sorted((tmp_path / "out").iterdir()) == before


def test_alert_trigger_fires_a_retrain_once_per_new_alert(services: Services, ads: Path) -> None:
    from appliance.events import record_event

    retrain_job(services)
    job = services.jobs.add("ads", "on-drift", "alert_trigger", FAR_AWAY, target="captions",
                            params={"retrain": "retrain", "rules": ["drift_psi"]})  # fmt: skip
    calls: list[tuple[str, str]] = []

    def look() -> dict:
        return run_job(services, job, "schedule", trigger=lambda j, c: calls.append((j["name"], c)))

    def alert(rule: str) -> None:
        ws = services.workspaces.get("ads")["id"]
        services.registry.write(
            lambda db: record_event(db, ws, "alert_firing", "captions", rule=rule)
        )

    assert look()["status"] == "skipped"
    alert("p95_latency_ms")  # not a rule this job watches
    assert look()["status"] == "skipped"
    alert("drift_psi")
    assert look()["status"] == "succeeded"
    assert look()["status"] == "skipped"  # the same alert does not trigger twice
    assert calls == [("retrain", "alert:captions/drift_psi")]


def test_next_run_as_the_registry_sees_it() -> None:
    from appliance.scheduler.jobs import next_run_at

    now = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    cron = {"enabled": True, "trigger": {"cron": "0 3 * * *"}, "created_at": "2026-11-01T00:00:00Z"}
    assert next_run_at(cron, now) == datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
    hourly = {"enabled": True, "trigger": {"interval_s": 3600}, "created_at": "2026-11-26T09:30:00Z",
              "last_run_at": None}  # fmt: skip
    assert next_run_at(hourly, now) == datetime(2026, 11, 26, 10, 30, tzinfo=UTC)
    overdue = {**hourly, "last_run_at": "2026-11-26T07:00:00Z"}
    assert next_run_at(overdue, now) == now
    assert next_run_at({**cron, "enabled": False}, now) is None
