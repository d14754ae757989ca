"""Registering model versions, listing them, moving aliases, and deleting versions."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlite_utils

from appliance.artifacts import publish_folder, stage_folder
from appliance.artifacts.folders import STALE_STAGING_SECONDS, sweep_staging
from appliance.artifacts.gc import Collector, Freed
from appliance.errors import Conflict, InvalidInput, NotFound
from appliance.events import record_event
from appliance.models.deletion import blockers, next_version
from appliance.models.folder import SKIPPED, validate_model_folder
from appliance.names import split_ref, validate_name
from appliance.registry import Registry, Rows, first_row, new_id, utcnow
from appliance.workspaces import Workspaces


class Models:
    def __init__(
        self,
        registry: Registry,
        workspaces: Workspaces,
        home: Path,
        name_max: int = 64,
        collector: Collector | None = None,
    ):
        self._registry = registry
        self._collector = collector or Collector(registry, home)
        self._workspaces = workspaces
        self._home = home
        self._root = home / "models"
        self._staging = self._root / ".staging"
        self._max = name_max

    def register(
        self,
        workspace: str,
        name: str,
        folder: Path,
        *,
        metrics: dict[str, float] | None = None,
        run_id: str | None = None,
        dataset_id: str | None = None,
        dataset_digest: str | None = None,
        parent_version_id: str | None = None,
        description: str = "",
        recipe: str | None = None,
        runtime: str | None = None,
        task: str | None = None,
        info: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Copy `folder` in as the next immutable version of model `name`. `runtime` says how
        it is served ('recipe' when a recipe is named), `task` what it does, `info` what it is
        (see appliance.models.intake, which works them out from the folder).

        The folder is staged and renamed into place before the row is written, so a crash at any
        point leaves either no version or a complete one.
        """
        validate_name(name, "model name", self._max)
        ws = self._workspaces.get(workspace)
        notes = validate_model_folder(folder)
        sweep_staging(self._staging)
        self._sweep_unrecorded()
        version_id = new_id()
        staged = stage_folder(folder, self._staging / version_id, skip=SKIPPED)
        final = self._root / version_id
        publish_folder(staged, final)

        def insert(db: sqlite_utils.Database) -> dict[str, Any]:
            model = _find_model(db, ws["id"], name)
            if model is None:
                model = {"id": new_id(), "workspace_id": ws["id"], "name": name}
                model.update(description="", created_at=utcnow())
                db.table("models").insert(model)
            row = {
                "id": version_id,
                "model_id": model["id"],
                "version": next_version(db, ws["id"], model["id"]),
                "path": final.relative_to(self._home).as_posix(),
                "digest": staged.digest,
                "size": staged.size,
                "metrics": json.dumps(metrics or {}, sort_keys=True),
                "run_id": run_id,
                "dataset_id": dataset_id,
                "dataset_digest": dataset_digest,
                "parent_version_id": parent_version_id,
                "description": description,
                "recipe": recipe,
                "runtime": runtime or ("recipe" if recipe else None),
                "task": task,
                "info": json.dumps(info or {}, sort_keys=True),
                "created_at": utcnow(),
            }
            db.table("model_versions").insert(row)
            record_event(
                db, ws["id"], "model_registered", f"{name}@{row['version']}",
                model_version_id=version_id,
            )  # fmt: skip
            return row

        try:
            row = self._registry.write(insert)
        except BaseException:
            _remove_tree(final)  # the row never landed: take the folder back out
            raise
        return self._decorate(row, name, ws["name"]) | {"notes": notes}

    def add_metrics(self, version_id: str, metrics: dict[str, float]) -> None:
        """Merge `metrics` into a version's (its weights and lineage never change; figures
        measured later, such as a calibration's, join the ones of its run)."""

        def merge(db: sqlite_utils.Database) -> None:
            (current,) = db.execute(
                "SELECT metrics FROM model_versions WHERE id = ?", [version_id]
            ).fetchone()
            merged = {**json.loads(current or "{}"), **metrics}
            db.execute(
                "UPDATE model_versions SET metrics = ? WHERE id = ?",
                [json.dumps(merged, sort_keys=True), version_id],
            )

        self._registry.write(merge)

    def _sweep_unrecorded(self) -> None:
        """Remove version folders a crash left between their rename and their row. Only stale
        ones: a young one may be another process's registration about to write its row."""
        if not self._root.is_dir():
            return
        cutoff = time.time() - STALE_STAGING_SECONDS
        stale = [
            p
            for p in self._root.iterdir()
            if p != self._staging and p.is_dir() and p.stat().st_mtime < cutoff
        ]
        if not stale:
            return
        known = {r["id"] for r in self._registry.query("SELECT id FROM model_versions")}
        for folder in stale:
            if folder.name not in known:
                _remove_tree(folder)

    def list(self, workspace: str) -> Rows:
        ws = self._workspaces.get(workspace)
        return self._registry.query(
            "SELECT m.id, m.name, m.created_at, count(v.id) AS versions,"
            " max(v.version) AS latest_version"
            " FROM models m LEFT JOIN model_versions v ON v.model_id = m.id"
            " WHERE m.workspace_id = ? GROUP BY m.id ORDER BY m.name",
            (ws["id"],),
        )

    def versions(self, workspace: str, name: str) -> Rows:
        model = self._model(workspace, name)
        rows = self._registry.query(
            "SELECT * FROM model_versions WHERE model_id = ? ORDER BY version", (model["id"],)
        )
        aliases = self.aliases(workspace, name)
        return [
            self._decorate(r, name, workspace, [a for a, v in aliases.items() if v == r["version"]])
            for r in rows
        ]

    def aliases(self, workspace: str, name: str) -> dict[str, int]:
        model = self._model(workspace, name)
        rows = self._registry.query(
            "SELECT a.alias, v.version FROM model_aliases a"
            " JOIN model_versions v ON v.id = a.version_id WHERE a.model_id = ? ORDER BY a.alias",
            (model["id"],),
        )
        return {r["alias"]: r["version"] for r in rows}

    def get(self, workspace: str, ref: str) -> dict[str, Any]:
        """Resolve `NAME`, `NAME@3`, `NAME@v3` or `NAME@ALIAS` to one version."""
        name, version_ref = split_ref(ref)
        versions = self.versions(workspace, name)
        if not versions:
            raise NotFound(f"model '{name}' has no versions")
        if version_ref is None or version_ref == "latest":
            return versions[-1]
        number = version_ref[1:] if version_ref[:1] in "vV" else version_ref
        is_number = number.isascii() and number.isdigit()  # "³" is a digit int() refuses
        for row in versions:
            if (is_number and row["version"] == int(number)) or version_ref in row["aliases"]:
                return row
        known = ", ".join(sorted({a for r in versions for a in r["aliases"]})) or "none"
        raise NotFound(
            f"model '{name}' has no version or alias '{version_ref}' "
            f"(versions 1..{versions[-1]['version']}, aliases: {known})"
        )

    def set_alias(self, workspace: str, ref: str, alias: str) -> dict[str, Any]:
        validate_name(alias, "alias", self._max)
        if alias.isdigit() or (alias[:1] in "vV" and alias[1:].isdigit()) or alias == "latest":
            raise InvalidInput(f"alias '{alias}' would read as a version; choose a word")
        version = self.get(workspace, ref)
        ws = self._workspaces.get(workspace)

        def move(db: sqlite_utils.Database) -> None:
            previous = db.execute(
                "SELECT v.version FROM model_aliases a JOIN model_versions v ON v.id = a.version_id"
                " WHERE a.model_id = ? AND a.alias = ?",
                [version["model_id"], alias],
            ).fetchone()
            db.table("model_aliases").upsert(
                {
                    "model_id": version["model_id"],
                    "alias": alias,
                    "version_id": version["id"],
                    "updated_at": utcnow(),
                },
                pk=("model_id", "alias"),
            )
            record_event(
                db, ws["id"], "alias_set", f"{version['name']}@{alias}",
                model_version_id=version["id"], version=version["version"],
                previous=previous[0] if previous else None,
            )  # fmt: skip

        self._registry.write(move)
        return self.get(workspace, f"{version['name']}@{alias}")

    def unset_alias(self, workspace: str, name: str, alias: str) -> None:
        model = self._model(workspace, name)

        def remove(db: sqlite_utils.Database) -> None:
            cursor = db.execute(
                "DELETE FROM model_aliases WHERE model_id = ? AND alias = ?", [model["id"], alias]
            )
            if cursor.rowcount == 0:
                raise NotFound(f"model '{name}' has no alias '{alias}'")
            record_event(db, model["workspace_id"], "alias_unset", f"{name}@{alias}")

        self._registry.write(remove)

    def delete(self, workspace: str, ref: str, force: bool = False) -> tuple[str, Freed]:
        """Delete one version (`NAME@VERSION`): its row in one write, then its folder. Refused
        while it is in use (models/deletion.py says what counts); `force` overrides only the
        uses that lose a way back. Returns the version's `NAME@N` and what was freed."""
        name, version_ref = split_ref(ref)
        if version_ref is None:
            raise InvalidInput(f"say which version of '{name}' to delete: {name}@VERSION")
        version = self.get(workspace, ref)
        label = f"{name}@{version['version']}"

        def remove(db: sqlite_utils.Database) -> None:
            hard, soft = blockers(db, version)
            if hard or (soft and not force):
                then = "" if hard else "; pass --force to delete it anyway"
                raise Conflict(f"{label} is not deleted: " + "; ".join(hard or soft) + then)
            db.execute("DELETE FROM model_versions WHERE id = ?", [version["id"]])
            record_event(
                db, version["workspace_id"], "model_version_deleted", label,
                model_version_id=version["id"], model_id=version["model_id"],
                version=version["version"],
            )  # fmt: skip

        version["workspace_id"] = self._model(workspace, name)["workspace_id"]
        self._registry.write(remove)
        folder = self.folder(version)
        exports = self._home / "exports" / version["id"]  # its backend exports, if any
        return label, self._collector.free([folder, exports], exempt=[folder, exports])

    def by_run(self, run_id: str) -> dict[str, Any] | None:
        """The version a run registered, if any."""
        rows = self._registry.query(
            "SELECT v.*, m.name, w.name AS workspace FROM model_versions v"
            " JOIN models m ON m.id = v.model_id JOIN workspaces w ON w.id = m.workspace_id"
            " WHERE v.run_id = ? ORDER BY v.created_at DESC LIMIT 1",
            (run_id,),
        )
        return self._decorate(rows[0], rows[0]["name"], rows[0]["workspace"]) if rows else None

    def folder(self, version: dict[str, Any]) -> Path:
        return self._home / version["path"]

    def _model(self, workspace: str, name: str) -> dict[str, Any]:
        ws = self._workspaces.get(workspace)
        model = _find_model(self._registry.db, ws["id"], name)
        if model is None:
            raise NotFound(f"no model '{name}' in workspace '{workspace}'")
        return model

    def _decorate(
        self, row: dict[str, Any], name: str, workspace: str, aliases: Sequence[str] = ()
    ) -> dict[str, Any]:
        out = dict(row)
        for column in ("metrics", "info"):
            if isinstance(out.get(column), str):
                out[column] = json.loads(out[column])
        out.update(name=name, workspace=workspace, aliases=[*aliases])
        return out


def _find_model(db: sqlite_utils.Database, workspace_id: str, name: str) -> dict[str, Any] | None:
    return first_row(db, "models", "workspace_id = ? AND name = ?", [workspace_id, name])


def _remove_tree(path: Path) -> None:
    if path.exists():
        for p in [path, *path.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        shutil.rmtree(path)
