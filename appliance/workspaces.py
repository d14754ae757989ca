"""Workspaces: named project spaces that own datasets, runs, models and deployments."""

from __future__ import annotations

from typing import Any

import sqlite_utils

from appliance.errors import Conflict, NotFound
from appliance.names import validate_name
from appliance.registry import Registry, Rows, first_row, new_id, utcnow

_COUNTED = ("datasets", "runs", "models", "deployments")


class Workspaces:
    def __init__(self, registry: Registry, name_max_length: int = 64):
        self._registry = registry
        self._max = name_max_length

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

    def delete(self, name: str, force: bool = False) -> None:
        """Delete a workspace; one that holds anything needs `force`, which deletes it all."""

        def remove(db: sqlite_utils.Database) -> None:
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
            db.execute("DELETE FROM workspaces WHERE id = ?", [workspace["id"]])

        self._registry.write(remove)


def _find(db: sqlite_utils.Database, name: str) -> dict[str, Any] | None:
    return first_row(db, "workspaces", "name = ?", [name])
