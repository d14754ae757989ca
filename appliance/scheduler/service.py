"""The scheduler of a server process: APScheduler's AsyncIOScheduler on the server's event loop,
rebuilt from the `jobs` rows at start and kept in step with them (the CLI may add, pause or remove
jobs from another process). Jobs run on worker threads, never on the loop.

Policies: one run of a job at a time, and at most one retrain per model; a trigger that arrives
meanwhile is kept as one follow-up (later ones coalesce into it). A run missed while the appliance
was down runs once at start when it is within the misfire grace time.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from appliance.errors import Conflict
from appliance.monitoring.dora import parse_time
from appliance.scheduler import jobs, runner
from appliance.services import Services
from appliance.serving.service import Serving

log = logging.getLogger("appliance.scheduler")

SYNC_EVERY_S = 2.0


def make_trigger(trigger: dict[str, Any]) -> BaseTrigger:
    if "cron" in trigger:
        return CronTrigger.from_crontab(trigger["cron"], timezone=UTC)
    return IntervalTrigger(seconds=int(trigger["interval_s"]), timezone=UTC)


class Scheduler:
    def __init__(self, services: Services, serving: Serving | None):
        self.services = services
        self.serving = serving
        grace = services.settings.job_misfire_grace_s
        self._aps = AsyncIOScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": grace},
        )
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="job")
        self._lock = threading.Lock()
        self._running: dict[str, Future[Any]] = {}  # lane → the run in progress
        self._follow_up: dict[str, tuple[dict[str, Any], str]] = {}  # lane → (job, cause)
        self._known: dict[str, str] = {}  # job id → its updated_at, as last scheduled
        self._stopping = threading.Event()
        self.coalesced = 0

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if interrupted := await asyncio.to_thread(self.services.jobs.recover_interrupted):
            log.warning("marked %d job run(s) failed: their process ended mid-run", interrupted)
        self._aps.start()
        self._aps.add_job(self.sync, IntervalTrigger(seconds=SYNC_EVERY_S), id="_sync")
        await self.sync()
        await asyncio.to_thread(self._catch_up)

    async def sync(self) -> None:
        """Bring APScheduler in line with the rows: new, changed, paused and removed jobs."""
        try:
            rows = {j["id"]: j for j in await asyncio.to_thread(self.services.jobs.list)}
        except asyncio.CancelledError:
            return  # shutting down
        except Exception as exc:  # a busy registry: the next sync tries again
            log.warning("could not read the jobs: %s", exc)
            return
        for job_id in list(self._known):
            if job_id not in rows or not rows[job_id]["enabled"]:
                self._known.pop(job_id)
                if self._aps.get_job(job_id):
                    self._aps.remove_job(job_id)
        for job_id, job in rows.items():
            if not job["enabled"] or self._known.get(job_id) == job["updated_at"]:
                continue
            self._aps.add_job(
                self._fire, make_trigger(job["trigger"]), args=[job_id], id=job_id,
                name=f"{job['workspace']}/{job['name']}", replace_existing=True,
            )  # fmt: skip
            self._known[job_id] = job["updated_at"]

    def scheduled(self) -> list[dict[str, Any]]:
        """The APScheduler view: job id and next fire time."""
        return [
            {"id": j.id, "name": j.name, "next_run_time": j.next_run_time}
            for j in self._aps.get_jobs()
            if j.id != "_sync"
        ]

    def stop(self) -> None:
        """Stop firing (call on the event loop); running jobs are asked to stop."""
        self._stopping.set()
        if self._aps.running:
            self._aps.shutdown(wait=False)

    def shutdown(self) -> None:
        """After `stop`: cancel the training children of running jobs and wait for the jobs.
        Blocking; call it off the event loop."""
        self._stopping.set()
        from appliance.runs.launcher import Execution

        for run in self.services.registry.query(
            "SELECT id FROM runs WHERE status IN ('queued', 'running') AND job_id IS NOT NULL"
        ):
            try:
                Execution(self.services, run["id"]).cancel()
            except Exception as exc:
                log.warning("could not cancel run %s: %s", run["id"], exc)
        self._pool.shutdown(wait=True, cancel_futures=True)

    # -- running jobs ------------------------------------------------------------------------

    async def run_now(self, job: dict[str, Any], cause: str = "manual") -> str:
        """Start `job` in the background; its job_run id once it has begun."""
        started: Future[str] = Future()
        if not self.request(job, cause, started):
            raise Conflict(
                f"job '{job['name']}' (or another retrain of its model) is already running; "
                "this request will run once it ends"
            )
        return await asyncio.wrap_future(started)

    async def approve(self, job_run_id: str) -> dict[str, Any]:
        """Deploy a version awaiting approval into this server, then watch it."""
        return await asyncio.to_thread(runner.approve, self.services, job_run_id, self.serving)

    def request(self, job: dict[str, Any], cause: str, started: Future[str] | None = None) -> bool:
        """Run `job` now, or keep it as the follow-up of its lane's run in progress (later
        requests replace it: one follow-up, however many triggers). True when it started."""
        lane = jobs.lane(job)
        with self._lock:
            if self._stopping.is_set():
                return False
            if lane in self._running:
                if lane in self._follow_up:
                    self.coalesced += 1
                self._follow_up[lane] = (job, cause)
                return False
            self._running[lane] = self._pool.submit(self._run, lane, job, cause, started)
            return True

    def _run(self, lane: str, job: dict[str, Any], cause: str, started: Future[str] | None) -> None:
        while True:
            try:
                runner.run_job(
                    self.services, job, cause, self.serving,
                    trigger=lambda other, why: self._trigger(other, why),
                    should_stop=self._stopping.is_set,
                    on_begin=started.set_result if started else None,
                )  # fmt: skip
            except Conflict as exc:  # its lane runs in another process (a CLI run-now)
                log.warning("job %s skipped: %s", job["name"], exc)
            except Exception:
                log.exception("job %s failed outside its own error handling", job["name"])
            started = None
            with self._lock:
                follow = self._follow_up.pop(lane, None)
                if follow is None or self._stopping.is_set():
                    self._running.pop(lane, None)
                    return
            job, cause = follow

    def _trigger(self, job: dict[str, Any], cause: str) -> None:
        self.request(job, cause)

    async def _fire(self, job_id: str) -> None:
        try:
            job = await asyncio.to_thread(self.services.jobs.by_id, job_id)
        except (Exception, asyncio.CancelledError):
            return  # removed since it was scheduled (the next sync drops it), or shutting down
        if job["enabled"]:
            self.request(job, "schedule")

    def _catch_up(self) -> None:
        """Runs missed while the appliance was down: once each, when within the grace time."""
        now = datetime.now(UTC)
        grace = timedelta(seconds=self.services.settings.job_misfire_grace_s)
        for job in self.services.jobs.list():
            if not job["enabled"] or not job["last_run_at"]:
                continue
            last = parse_time(job["last_run_at"])
            due = make_trigger(job["trigger"]).get_next_fire_time(last, last)
            if due is not None and due < now and now - due <= grace:
                self.request(job, "missed")

    def wait_idle(self, timeout: float = 60) -> bool:
        """Block until no job runs (tests, the demo)."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._running:
                    return True
            time.sleep(0.05)
        return False
