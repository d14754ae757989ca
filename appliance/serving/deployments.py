"""Deployment records: which model version an endpoint serves, with its runtime options. Every
change is an event (deployed, rolled_back, deploy_failed) carrying the version it replaced, so a
rollback knows where to go and DORA metrics can be computed from the history."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import sqlite_utils

from appliance.errors import NotFound
from appliance.events import record_event
from appliance.names import validate_name
from appliance.registry import Registry, Rows, first_row, new_id, utcnow
from appliance.serving.options import DeployOptions
from appliance.workspaces import Workspaces


class Deployments:
    def __init__(self, registry: Registry, workspaces: Workspaces, name_max: int = 64):
        self._registry = registry
        self._workspaces = workspaces
        self._max = name_max

    def record(
        self,
        workspace: str,
        endpoint: str,
        version: dict[str, Any],
        options: DeployOptions,
        kind: str = "deployed",
        torch_threads: int | None = None,
        resident_mb: float | None = None,
    ) -> dict[str, Any]:
        """Point `endpoint` at `version` and append the event, in one transaction. The event
        also records the torch threads the loaded model runs with and the RSS its load grew
        by (serving/footprint.py), where known."""
        validate_name(endpoint, "endpoint name", self._max)
        ws = self._workspaces.get(workspace)

        def write(db: sqlite_utils.Database) -> dict[str, Any]:
            now = utcnow()
            current = _find(db, ws["id"], endpoint)
            row = {
                "id": current["id"] if current else new_id(),
                "workspace_id": ws["id"],
                "endpoint": endpoint,
                "model_version_id": version["id"],
                **asdict(options),
                "status": "active",
                "created_at": current["created_at"] if current else now,
                "updated_at": now,
            }
            db.table("deployments").upsert(row, pk="id")
            record_event(
                db, ws["id"], kind, endpoint,
                model_version_id=version["id"], deployment_id=row["id"],
                model=version["name"], version=version["version"],
                previous_version_id=current["model_version_id"] if current else None,
                **asdict(options), **({"torch_threads": torch_threads} if torch_threads else {}),
                **({"resident_mb": resident_mb} if resident_mb is not None else {}),
            )  # fmt: skip
            return row

        return self._registry.write(write)

    def record_failure(
        self, workspace: str, endpoint: str, version: dict[str, Any], error: str
    ) -> None:
        ws = self._workspaces.get(workspace)
        self._registry.write(
            lambda db: record_event(
                db, ws["id"], "deploy_failed", endpoint, model_version_id=version["id"],
                model=version["name"], version=version["version"], error=error,
            )
        )  # fmt: skip

    def get(self, workspace: str, endpoint: str) -> dict[str, Any]:
        ws = self._workspaces.get(workspace)
        row = _find(self._registry.db, ws["id"], endpoint)
        if row is None:
            raise NotFound(f"no deployment '{endpoint}' in workspace '{workspace}'")
        return row

    def list(self, workspace: str | None = None) -> Rows:
        """Deployments with their model name and version (all workspaces when none is given)."""
        sql = (
            "SELECT d.*, w.name AS workspace, m.name AS model, v.version"
            " FROM deployments d JOIN workspaces w ON w.id = d.workspace_id"
            " JOIN model_versions v ON v.id = d.model_version_id JOIN models m ON m.id = v.model_id"
        )
        if workspace is None:
            return self._registry.query(sql + " ORDER BY w.name, d.endpoint")
        ws = self._workspaces.get(workspace)
        return self._registry.query(
            sql + " WHERE d.workspace_id = ? ORDER BY d.endpoint", (ws["id"],)
        )

    def previous_version_id(self, workspace: str, endpoint: str) -> str:
        """The version the current one replaced (what a rollback returns to)."""
        deployment = self.get(workspace, endpoint)
        rows = self._registry.query(
            "SELECT detail FROM events WHERE deployment_id = ? AND model_version_id = ?"
            " AND kind IN ('deployed', 'rolled_back') ORDER BY id DESC LIMIT 1",
            (deployment["id"], deployment["model_version_id"]),
        )
        previous = json.loads(rows[0]["detail"]).get("previous_version_id") if rows else None
        if not previous:
            raise NotFound(f"deployment '{endpoint}' has no earlier version to roll back to")
        return str(previous)


def _find(db: sqlite_utils.Database, workspace_id: str, endpoint: str) -> dict[str, Any] | None:
    return first_row(
        db, "deployments", "workspace_id = ? AND endpoint = ?", [workspace_id, endpoint]
    )
