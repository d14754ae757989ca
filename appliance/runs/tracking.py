"""Recording runs: create, log params, metrics and artifacts, finish. The MLflow-tracking part."""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import sqlite_utils

from appliance.artifacts import ArtifactStore
from appliance.errors import Conflict, InvalidInput, NotFound
from appliance.registry import Registry, Rows, first_row, new_id, utcnow
from appliance.workspaces import Workspaces

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
FINISHED = ("succeeded", "failed", "cancelled")
_JSON_COLUMNS = ("params", "library_versions", "executor_ref")
Names = list[str]
# Listings leave out the bulky lineage columns (`run show` has them): 10,000 rows stay fast.
_LIST_COLUMNS = (
    "id, workspace_id, name, recipe, status, params, dataset_id, dataset_digest, seed, "
    "model_name, error, executor, created_at, started_at, ended_at"
)


class Runs:
    def __init__(self, registry: Registry, workspaces: Workspaces, store: ArtifactStore):
        self._registry = registry
        self._workspaces = workspaces
        self._store = store

    def create(
        self,
        workspace: str,
        *,
        recipe: str = "",
        name: str = "",
        params: Mapping[str, Any] | None = None,
        status: str = "running",
        **lineage: Any,
    ) -> dict[str, Any]:
        """A new run. `lineage` may hold dataset_id, dataset_digest, code_hash, seed,
        library_versions, parent_model_version_id and log_path."""
        if status not in ("queued", "running"):
            raise InvalidInput(f"a new run is queued or running, not {status!r}")
        ws = self._workspaces.get(workspace)
        now = utcnow()
        row: dict[str, Any] = {
            "id": new_id(),
            "workspace_id": ws["id"],
            "name": name,
            "recipe": recipe,
            "status": status,
            "params": json.dumps(dict(params or {}), sort_keys=True, default=str),
            "created_at": now,
            "started_at": now if status == "running" else None,
        }
        for key, value in lineage.items():
            row[key] = json.dumps(value, sort_keys=True) if key in _JSON_COLUMNS else value
        self._registry.write(lambda db: db.table("runs").insert(row))
        return _decode(row)

    def get(self, run_id: str) -> dict[str, Any]:
        rows = self._registry.query("SELECT * FROM runs WHERE id = ?", (run_id,))
        if not rows:
            raise NotFound(f"no run '{run_id}' (see `appliance run list`)")
        return _decode(rows[0])

    def list(self, workspace: str, status: str | None = None, limit: int | None = None) -> Rows:
        ws = self._workspaces.get(workspace)
        sql = f"SELECT {_LIST_COLUMNS} FROM runs WHERE workspace_id = ?"
        args: list[Any] = [ws["id"]]
        if status:
            if status not in STATUSES:
                raise InvalidInput(f"unknown status {status!r}; one of {', '.join(STATUSES)}")
            sql += " AND status = ?"
            args.append(status)
        sql += " ORDER BY created_at DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return [_decode(r) for r in self._registry.query(sql, tuple(args))]

    def log_metric(self, run_id: str, key: str, value: float, step: int = 0) -> None:
        self.log_metrics(run_id, [(key, value, step)])

    def log_metrics(self, run_id: str, metrics: Iterable[tuple[str, float, int]]) -> None:
        rows = [(run_id, *_metric(key, value, step), utcnow()) for key, value, step in metrics]
        try:
            self._registry.write(
                lambda db: db.conn.executemany(
                    "INSERT INTO run_metrics (run_id, key, value, step, logged_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    rows,
                ),
                durable=False,  # training metrics: lost with the run if the machine dies
            )
        except sqlite3.IntegrityError:  # the foreign key: cheaper than a lookup on every call
            raise NotFound(f"no run '{run_id}'") from None

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        """Add params; like MLflow, a param once logged cannot change its value."""

        def merge(db: sqlite_utils.Database) -> None:
            current = json.loads(_one(db, run_id)["params"])
            for key, value in params.items():
                value = value if isinstance(value, str | int | float | bool) else str(value)
                if key in current and current[key] != value:
                    raise Conflict(
                        f"param '{key}' of run {run_id} is already {current[key]!r}; "
                        f"params cannot change (got {value!r})"
                    )
                current[key] = value
            db.execute(
                "UPDATE runs SET params = ? WHERE id = ?",
                [json.dumps(current, sort_keys=True), run_id],
            )

        self._registry.write(merge)

    def log_artifact(self, run_id: str, path: Path, name: str | None = None) -> Names:
        """Store a file, or every file under a folder, with the run; returns the stored names."""
        files = artifact_files(path, name)
        stored = [(rel, self._store.put_file(p)) for rel, p in files]
        now = utcnow()

        def insert(db: sqlite_utils.Database) -> None:
            _one(db, run_id)
            db.table("run_artifacts").upsert_all(
                [
                    {"run_id": run_id, "path": rel, "sha256": blob.sha256, "size": blob.size,
                     "logged_at": now}
                    for rel, blob in stored
                ],
                pk=("run_id", "path"),
            )  # fmt: skip

        self._registry.write(insert)
        return [rel for rel, _ in stored]

    def update(self, run_id: str, **fields: Any) -> None:
        """Set lineage fields (code_hash, seed, log_path, pid, …) on a run."""
        for key in _JSON_COLUMNS:
            if key in fields:
                fields[key] = json.dumps(fields[key], sort_keys=True)

        def apply(db: sqlite_utils.Database) -> None:
            _one(db, run_id)
            db.table("runs").update(run_id, fields)

        self._registry.write(apply)

    def note_executor(self, run_id: str, **fields: Any) -> None:
        """Merge what the run's executor says of it (a Ray job id, a worker) into executor_ref."""

        def apply(db: sqlite_utils.Database) -> None:
            ref = json.loads(_one(db, run_id).get("executor_ref") or "{}") | fields
            db.table("runs").update(run_id, {"executor_ref": json.dumps(ref, sort_keys=True)})

        self._registry.write(apply)

    def set_status(self, run_id: str, status: str, error: str | None = None) -> None:
        if status not in STATUSES:
            raise InvalidInput(f"unknown status {status!r}; one of {', '.join(STATUSES)}")

        def apply(db: sqlite_utils.Database) -> None:
            run = _one(db, run_id)
            if run["status"] in FINISHED:
                raise Conflict(f"run {run_id} already finished as {run['status']}")
            now = utcnow()
            fields: dict[str, Any] = {"status": status}
            if status == "running":
                fields["started_at"] = run["started_at"] or now
            if status in FINISHED:
                fields["ended_at"] = now
            if error is not None:
                fields["error"] = error
            db.table("runs").update(run_id, fields)

        self._registry.write(apply)

    def metrics(self, run_id: str) -> dict[str, Rows]:
        out: dict[str, Rows] = {}
        for row in self._registry.query(
            "SELECT key, step, value, logged_at FROM run_metrics WHERE run_id = ?"
            " ORDER BY key, step, rowid",
            (run_id,),
        ):
            out.setdefault(row.pop("key"), []).append(row)
        return out

    def last_value(self, run_id: str, key: str) -> float | None:
        """The latest value logged for `key` (one indexed lookup, for pollers)."""
        rows = self._registry.query(
            "SELECT value FROM run_metrics WHERE run_id = ? AND key = ?"
            " ORDER BY step DESC, rowid DESC LIMIT 1",
            (run_id, key),
        )
        return float(rows[0]["value"]) if rows else None

    def last_step(self, run_id: str) -> int:
        rows = self._registry.query(
            "SELECT coalesce(max(step), 0) AS step FROM run_metrics WHERE run_id = ?", (run_id,)
        )
        return int(rows[0]["step"])

    def latest_metrics(self, run_id: str) -> dict[str, float]:
        return {key: points[-1]["value"] for key, points in self.metrics(run_id).items()}

    def artifacts(self, run_id: str) -> Rows:
        return self._registry.query(
            "SELECT path, sha256, size, logged_at FROM run_artifacts"
            " WHERE run_id = ? ORDER BY path",
            (run_id,),
        )


def _metric(key: str, value: float, step: int) -> tuple[str, float, int]:
    if not key or len(key) > 250:
        raise InvalidInput("a metric name must have 1 to 250 characters")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"metric '{key}' must be a number, got {value!r}") from None
    if math.isnan(number):
        raise InvalidInput(f"metric '{key}' is NaN")
    return key, number, int(step)


def _one(db: sqlite_utils.Database, run_id: str) -> dict[str, Any]:
    row = first_row(db, "runs", "id = ?", [run_id])
    if row is None:
        raise NotFound(f"no run '{run_id}'")
    return row


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    for key in _JSON_COLUMNS:
        if isinstance(row.get(key), str):
            row[key] = json.loads(row[key])
    return row


def artifact_files(path: Path, name: str | None = None) -> list[tuple[str, Path]]:
    """The (stored name, file) pairs of an artifact: `path` itself, named `name` (default its
    own name), or every file under the folder `path`, named `name/relative path`."""
    if not path.exists():
        raise NotFound(f"{path} does not exist")
    base = name or path.name
    if path.is_file():
        return [(base, path)]
    return [
        (f"{base}/{p.relative_to(path).as_posix()}", p)
        for p in sorted(path.rglob("*"))
        if p.is_file()
    ]
