"""Workspaces: named project spaces that own datasets, runs, models and deployments."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlite_utils

from appliance.artifacts.gc import Collector, Freed
from appliance.errors import Conflict, NotFound
from appliance.names import validate_name
from appliance.registry import Registry, Rows, first_row, new_id, utcnow

_COUNTED = ("datasets", "runs", "models", "deployments")


class Workspaces:
    def __init__(
        self, registry: Registry, name_max_length: int = 64, collector: Collector | None = None
    ):
        self._registry = registry
        self._max = name_max_length
        self._collector = collector
        """Removes the files of a deleted workspace; without one, `appliance gc` does later."""

    def create(self, name: str, description: str = "", created_by: str = "") -> dict[str, Any]:
        """Create `name`; `created_by` marks one a program made (the demo), '' one a person did."""
        validate_name(name, "workspace name", self._max)

        def insert(db: sqlite_utils.Database) -> dict[str, Any]:
            if _find(db, name):
                raise Conflict(f"workspace '{name}' already exists")
            row = {"id": new_id(), "name": name, "description": description}
            row |= {"created_by": created_by, "created_at": utcnow()}
            db.table("workspaces").insert(row)
            return row

        return self._registry.write(insert)

    def ensure(self, name: str) -> dict[str, Any]:
        """The workspace called `name`, created if missing (used by the demo and the client)."""
        found = _find(self._registry.db, name)
        if found:
            return found
        try:
            return self.create(name)
        except Conflict:  # another process created it meanwhile
            return self.get(name)

    def get(self, name: str) -> dict[str, Any]:
        found = _find(self._registry.db, name)
        if not found:
            raise NotFound(f"no workspace '{name}' (see `appliance workspace list`)")
        return found

    def by_id(self, workspace_id: str) -> dict[str, Any]:
        rows = self._registry.query("SELECT * FROM workspaces WHERE id = ?", (workspace_id,))
        if not rows:
            raise NotFound(f"no workspace with id {workspace_id}")
        return rows[0]

    def list(self) -> Rows:
        counts = ", ".join(
            f"(SELECT count(*) FROM {table} t WHERE t.workspace_id = w.id) AS {table}"
            for table in _COUNTED
        )
        return self._registry.query(f"SELECT w.*, {counts} FROM workspaces w ORDER BY w.name")

    def show(self, name: str) -> dict[str, Any]:
        workspace = self.get(name)
        return next(w for w in self.list() if w["id"] == workspace["id"])

    def delete(self, name: str, force: bool = False) -> Freed | None:
        """Delete a workspace; one that holds anything needs `force`, which deletes it all:
        its rows in one write, then the files only they named (model version folders, run
        logs and scratch, review inputs, dataset caches, and the stored files no other
        workspace shares). Refused while one of its runs is queued or running."""

        def remove(db: sqlite_utils.Database) -> _Named:
            workspace = _find(db, name)
            if not workspace:
                raise NotFound(f"no workspace '{name}'")
            held = {
                table: db.execute(
                    f"SELECT count(*) FROM {table} WHERE workspace_id = ?", [workspace["id"]]
                ).fetchone()[0]
                for table in _COUNTED
            }
            if any(held.values()) and not force:
                summary = ", ".join(f"{n} {t}" for t, n in held.items() if n)
                raise Conflict(f"workspace '{name}' holds {summary}; pass --force to delete it all")
            running = [
                f"{run_id} ({status})"
                for run_id, status in db.execute(
                    "SELECT id, status FROM runs WHERE workspace_id = ?"
                    " AND status IN ('queued', 'running') ORDER BY created_at",
                    [workspace["id"]],
                )
            ]
            if running:
                raise Conflict(
                    f"workspace '{name}' is not deleted: run {', '.join(running)} uses it; "
                    "wait for it, or cancel it with `appliance run cancel RUN`"
                )
            named = _files_named(db, workspace["id"])
            db.execute("DELETE FROM workspaces WHERE id = ?", [workspace["id"]])
            return named

        named = self._registry.write(remove)
        if self._collector is None:
            return None
        home = self._collector.home_path
        paths = [home(p) for p in named.paths] + [home(f"datasets/{d}") for d in named.digests]
        blobs = [self._collector.blob(sha256) for sha256 in named.blobs]
        for digest in named.digests:
            blobs += self._collector.dataset_blobs(digest)
        return self._collector.free([*paths, *blobs], exempt=paths)


@dataclass
class _Named:
    """What a workspace's rows name on disk: paths relative to the home (its own, whatever
    their age), dataset digests and blobs (which other workspaces may share)."""

    paths: list[str] = field(default_factory=list)
    digests: list[str] = field(default_factory=list)
    blobs: list[str] = field(default_factory=list)


def _find(db: sqlite_utils.Database, name: str) -> dict[str, Any] | None:
    return first_row(db, "workspaces", "name = ?", [name])


def _files_named(db: sqlite_utils.Database, workspace_id: str) -> _Named:
    named = _Named(paths=[f"review/{workspace_id}"])
    for (path,) in db.execute(
        "SELECT v.path FROM model_versions v JOIN models m ON m.id = v.model_id"
        " WHERE m.workspace_id = ?",
        [workspace_id],
    ):
        named.paths.append(path)
    for (run_id,) in db.execute("SELECT id FROM runs WHERE workspace_id = ?", [workspace_id]):
        named.paths += [f"tmp/runs/{run_id}", f"logs/runs/{run_id}.log"]
    named.digests = [
        digest
        for (digest,) in db.execute(
            "SELECT v.digest FROM dataset_versions v JOIN datasets d ON d.id = v.dataset_id"
            " WHERE d.workspace_id = ?",
            [workspace_id],
        )
    ]
    named.blobs = [
        sha256
        for (sha256,) in db.execute(
            "SELECT a.sha256 FROM run_artifacts a JOIN runs r ON r.id = a.run_id"
            " WHERE r.workspace_id = ?",
            [workspace_id],
        )
    ]
    return named
