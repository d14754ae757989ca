"""Jobs as records: what runs when, kept in the registry so the scheduler can be rebuilt from rows
at every start. A job has a kind, a target, a trigger (an interval or a cron expression) and
parameters; each time it runs is a `job_runs` row saying what caused it and how it ended."""

from __future__ import annotations

import json
import os
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlite_utils

from appliance.errors import Conflict, InvalidInput, NotFound
from appliance.names import validate_name
from appliance.registry import Registry, Rows, first_row, new_id, utcnow
from appliance.runs.executors import EXECUTORS
from appliance.workspaces import Workspaces

HOST = socket.gethostname()

KINDS = ("retrain", "dataset_watch", "alert_trigger", "batch_predict", "housekeeping", "backup")
POLICIES = ("auto", "approve")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}

# What each kind's target names, and the parameters it requires.
TARGETS = {
    "retrain": "model",
    "dataset_watch": "dataset",
    "alert_trigger": "endpoint",
    "batch_predict": "endpoint",
    "housekeeping": "",
    "backup": "",
}
REQUIRED = {
    "retrain": ("recipe", "dataset"),
    "dataset_watch": ("source", "retrain"),
    "alert_trigger": ("retrain",),
    "batch_predict": ("source", "output"),
    "housekeeping": (),
    "backup": (),
}


def parse_trigger(text: str) -> dict[str, Any]:
    """'every 10m' / '10m' / 'cron 0 3 * * *' → {"interval_s": 600} / {"cron": "0 3 * * *"}."""
    value = " ".join(text.split())
    if value.startswith("cron "):
        expression = value[5:]
        _check_cron(expression)
        return {"cron": expression}
    if value.startswith("every "):
        value = value[6:]
    unit = _UNITS.get(value[-1:]) if value else None
    number = value[:-1] if unit else value
    if not (number.isascii() and number.isdigit()) or int(number) == 0:  # "³" is a digit
        raise InvalidInput(
            f"trigger '{text}' is neither 'every N[s|m|h|d]' nor 'cron MIN HOUR DAY MONTH WEEKDAY'"
        )
    return {"interval_s": int(number) * (unit or 1)}


def describe_trigger(trigger: dict[str, Any]) -> str:
    if "cron" in trigger:
        return f"cron {trigger['cron']}"
    seconds = int(trigger["interval_s"])
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"every {seconds // size}{unit}"
    return f"every {seconds}s"


def next_run_at(job: dict[str, Any], now: datetime | None = None) -> datetime | None:
    """When the job's schedule fires next, as the registry sees it (None while paused): a cron
    job at its next time after now; an interval job one interval after its last run (or its
    creation), or now when that is already past (due at the scheduler's next look)."""
    if not job["enabled"]:
        return None
    now = now or datetime.now(UTC)
    trigger = job["trigger"]
    if "cron" in trigger:
        from apscheduler.triggers.cron import CronTrigger

        fire = CronTrigger.from_crontab(trigger["cron"], timezone=UTC).get_next_fire_time(None, now)
        return fire.astimezone(UTC) if fire is not None else None
    start = datetime.fromisoformat(job.get("last_run_at") or job["created_at"])
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    return max(now, start + timedelta(seconds=int(trigger["interval_s"])))


def _check_cron(expression: str) -> None:
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(expression)
    except ValueError as exc:
        raise InvalidInput(f"cron expression '{expression}' is not valid: {exc}") from None


class Jobs:
    def __init__(self, registry: Registry, workspaces: Workspaces, name_max: int = 64):
        self._registry = registry
        self._workspaces = workspaces
        self._max = name_max

    def add(
        self,
        workspace: str,
        name: str,
        kind: str,
        trigger: dict[str, Any],
        target: str = "",
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        validate_name(name, "job name", self._max)
        if kind not in KINDS:
            raise InvalidInput(f"unknown job kind '{kind}' (kinds: {', '.join(KINDS)})")
        if TARGETS[kind] and not target:
            raise InvalidInput(f"a {kind} job needs a target: the {TARGETS[kind]} it acts on")
        params = dict(params or {})
        missing = [p for p in REQUIRED[kind] if not params.get(p)]
        if missing:
            raise InvalidInput(f"a {kind} job needs the parameter(s) {', '.join(missing)}")
        if params.get("policy", "auto") not in POLICIES:
            raise InvalidInput(f"policy must be one of {', '.join(POLICIES)}")
        if params.get("gate", "on") not in ("on", "off"):
            raise InvalidInput("gate must be 'on' (promote only if not worse) or 'off'")
        if params.get("executor", "local") not in EXECUTORS:
            raise InvalidInput(f"executor must be one of {', '.join(EXECUTORS)}")
        if params.get("ray_address") and params.get("executor") != "ray":
            raise InvalidInput("ray_address goes with executor=ray")
        if kind == "backup":
            from appliance.backup.retention import check_params

            check_params(params)
        if not (set(trigger) == {"interval_s"} or set(trigger) == {"cron"}):
            raise InvalidInput("a trigger is {'interval_s': N} or {'cron': 'EXPR'}")
        if "cron" in trigger:
            _check_cron(str(trigger["cron"]))
        ws = self._workspaces.get(workspace)

        def insert(db: sqlite_utils.Database) -> None:
            if first_row(db, "jobs", "workspace_id = ? AND name = ?", [ws["id"], name]):
                raise Conflict(f"workspace '{workspace}' already has a job '{name}'")
            now = utcnow()
            db.table("jobs").insert(
                {
                    "id": new_id(), "workspace_id": ws["id"], "name": name, "kind": kind,
                    "target": target, "trigger": json.dumps(trigger),
                    "params": json.dumps(params, sort_keys=True), "enabled": 1,
                    "created_at": now, "updated_at": now,
                }
            )  # fmt: skip

        self._registry.write(insert)
        return self.get(workspace, name)

    def get(self, workspace: str, name: str) -> dict[str, Any]:
        ws = self._workspaces.get(workspace)
        rows = self._select("WHERE j.workspace_id = ? AND j.name = ?", (ws["id"], name))
        if not rows:
            raise NotFound(f"no job '{name}' in workspace '{workspace}'")
        return rows[0]

    def by_id(self, job_id: str) -> dict[str, Any]:
        rows = self._select("WHERE j.id = ?", (job_id,))
        if not rows:
            raise NotFound(f"job {job_id} no longer exists")
        return rows[0]

    def list(self, workspace: str | None = None) -> Rows:
        if workspace is None:
            return self._select("", ())
        ws = self._workspaces.get(workspace)
        return self._select("WHERE j.workspace_id = ?", (ws["id"],))

    def set_enabled(self, workspace: str, name: str, enabled: bool) -> dict[str, Any]:
        job = self.get(workspace, name)
        self._registry.write(
            lambda db: db.execute(
                "UPDATE jobs SET enabled = ?, updated_at = ? WHERE id = ?",
                [int(enabled), utcnow(), job["id"]],
            ).close()
        )
        return self.get(workspace, name)

    def remove(self, workspace: str, name: str) -> None:
        job = self.get(workspace, name)
        self._registry.write(
            lambda db: db.execute("DELETE FROM jobs WHERE id = ?", [job["id"]]).close()
        )

    # -- job runs ----------------------------------------------------------------------------

    def begin(self, job_id: str, cause: str) -> str:
        """Record a run of the job as running, in its lane (`lane`), and return its id; a
        Conflict when a live process is already running a job of that lane. A run a process
        of this machine left running when it died is marked failed first."""
        run_id = new_id()

        def insert(db: sqlite_utils.Database) -> None:
            job = first_row(db, "jobs", "id = ?", [job_id])
            if job is None:
                raise NotFound(f"job {job_id} no longer exists")
            job_lane = lane(job)
            for other in db.query(
                "SELECT id, pid, host, started_at FROM job_runs"
                " WHERE lane = ? AND status = 'running'",
                [job_lane],
            ):
                if other["pid"] and other["host"] == HOST and not process_alive(other["pid"]):
                    _interrupted(db, other)
                    continue
                raise Conflict(
                    f"job '{job['name']}' cannot start: job run {other['id']} of its lane "
                    f"({job_lane}) has been running since {other['started_at']} in process "
                    f"{other['pid'] or '?'} on {other['host'] or '?'}; wait for it to end"
                )
            db.table("job_runs").insert(
                {"id": run_id, "job_id": job_id, "cause": cause, "status": "running",
                 "detail": "{}", "started_at": utcnow(), "lane": job_lane,
                 "pid": os.getpid(), "host": HOST}
            )  # fmt: skip

        self._registry.write(insert)
        return run_id

    def recover_interrupted(self) -> int:
        """Mark failed the runs that processes of this machine left running when they died (a
        server killed mid-run); returns how many. Runs of live processes are left alone."""

        def recover(db: sqlite_utils.Database) -> int:
            rows = db.query(
                "SELECT id, pid, host FROM job_runs WHERE status = 'running' AND host = ?", [HOST]
            )
            gone = [r for r in rows if r["pid"] and not process_alive(r["pid"])]
            for row in gone:
                _interrupted(db, row)
            return len(gone)

        return self._registry.write(recover)

    def finish(
        self,
        job_run_id: str,
        status: str,
        run_id: str | None = None,
        **detail: Any,
    ) -> None:
        ended = None if status in ("running", "awaiting_approval") else utcnow()
        self._registry.write(
            lambda db: db.execute(
                "UPDATE job_runs SET status = ?, run_id = COALESCE(?, run_id), detail = ?,"
                " ended_at = ? WHERE id = ?",
                [status, run_id, json.dumps(detail, sort_keys=True, default=str), ended,
                 job_run_id],
            ).close()
        )  # fmt: skip

    def runs(self, job_id: str, limit: int = 20) -> Rows:
        rows = self._registry.query(
            "SELECT * FROM job_runs WHERE job_id = ? ORDER BY started_at DESC, rowid DESC LIMIT ?",
            (job_id, limit),
        )
        for row in rows:
            row["detail"] = json.loads(row["detail"])
        return rows

    def awaiting_approval(self, workspace: str) -> Rows:
        ws = self._workspaces.get(workspace)
        rows = self._registry.query(
            "SELECT r.*, j.name AS job FROM job_runs r JOIN jobs j ON j.id = r.job_id"
            " WHERE j.workspace_id = ? AND r.status = 'awaiting_approval' ORDER BY r.started_at",
            (ws["id"],),
        )
        for row in rows:
            row["detail"] = json.loads(row["detail"])
        return rows

    def _select(self, where: str, params: tuple[Any, ...]) -> Rows:
        rows = self._registry.query(
            "SELECT j.*, w.name AS workspace,"
            " (SELECT MAX(r.started_at) FROM job_runs r WHERE r.job_id = j.id) AS last_run_at,"
            " (SELECT r.status FROM job_runs r WHERE r.job_id = j.id"
            "  ORDER BY r.started_at DESC, r.rowid DESC LIMIT 1) AS last_status"
            f" FROM jobs j JOIN workspaces w ON w.id = j.workspace_id {where}"
            " ORDER BY w.name, j.name",
            params,
        )
        for row in rows:
            row["trigger"] = json.loads(row["trigger"])
            row["params"] = json.loads(row["params"])
            row["enabled"] = bool(row["enabled"])
        return rows


def lane(job: dict[str, Any]) -> str:
    """Retrains of one model share a lane (one at a time); any other job is its own lane."""
    if job["kind"] == "retrain":
        return f"retrain:{job['workspace_id']}:{job['target']}"
    return f"job:{job['id']}"


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _interrupted(db: sqlite_utils.Database, row: dict[str, Any]) -> None:
    detail = {"error": f"interrupted: the process running it (pid {row['pid']}) ended first"}
    db.execute(
        "UPDATE job_runs SET status = 'failed', detail = ?, ended_at = ? WHERE id = ?",
        [json.dumps(detail), utcnow(), row["id"]],
    )
