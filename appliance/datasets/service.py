"""Dataset versions: immutable manifests (path → sha256, size) over files kept once in the
artifact store. A version's id is the sha256 of its manifest, so the same content is the same
version; `materialize` lays a version out as a folder again for training; `delete` removes one
(deletion.py says when it is refused) and the files no other version shares."""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from appliance.artifacts import ArtifactStore
from appliance.artifacts.gc import Collector, Freed
from appliance.datasets import columns as dataset_columns
from appliance.datasets.deletion import blockers, next_version
from appliance.datasets.imagefolder import METADATA, ImageFolder, read_imagefolder
from appliance.datasets.textrows import TextRows, is_text_rows, read_text_rows, row_key
from appliance.errors import Conflict, InvalidInput, NotFound
from appliance.events import record_event
from appliance.names import split_ref, validate_name
from appliance.registry import Registry, Rows, first_row, new_id, utcnow
from appliance.workspaces import Workspaces

MIN_DIGEST_PREFIX = 6


@dataclass(frozen=True)
class AddResult:
    version: dict[str, Any]
    created: bool
    ignored: tuple[str, ...]


class Datasets:
    def __init__(
        self,
        registry: Registry,
        workspaces: Workspaces,
        store: ArtifactStore,
        home: Path,
        *,
        max_image_pixels: int = 40_000_000,
        name_max: int = 64,
        collector: Collector | None = None,
    ):
        self._registry = registry
        self._collector = collector or Collector(registry, home)
        self._workspaces = workspaces
        self._store = store
        self._cache = home / "datasets"
        self._max_pixels = max_image_pixels
        self._max = name_max

    def add(self, workspace: str, name: str, folder: Path, source: str | None = None) -> AddResult:
        """Validate `folder`, store its files and record a version (or find the same one).
        `source` says where it came from (default: the folder's path)."""
        validate_name(name, "dataset name", self._max)
        ws = self._workspaces.get(workspace)
        imagefolder = read_dataset_folder(folder, self._max_pixels)
        files = [
            {"path": rel, **vars(self._store.put_file(folder / rel))} for rel in imagefolder.files
        ]
        manifest = json.dumps({"files": files}, sort_keys=True, separators=(",", ":"))
        digest = self._store.put_bytes(manifest.encode()).sha256
        columns = dataset_columns.count_columns(imagefolder.rows)

        def record(db: sqlite_utils.Database) -> tuple[dict[str, Any], bool]:
            dataset = _find_dataset(db, ws["id"], name)
            if dataset is None:
                dataset = {"id": new_id(), "workspace_id": ws["id"], "name": name}
                dataset["created_at"] = utcnow()
                db.table("datasets").insert(dataset)
            existing = list(
                db.table("dataset_versions").rows_where(
                    "dataset_id = ? AND digest = ?", [dataset["id"], digest]
                )
            )
            if existing:
                return _decoded(existing[0]), False
            latest = db.execute(
                "SELECT version, digest FROM dataset_versions WHERE dataset_id = ?"
                " ORDER BY version DESC LIMIT 1",
                [dataset["id"]],
            ).fetchone()
            row = {
                "digest": digest,
                "dataset_id": dataset["id"],
                "version": next_version(db, ws["id"], dataset["id"]),
                "file_count": len(files),
                "total_bytes": sum(f["size"] for f in files),
                "row_count": len(imagefolder.rows),
                "columns": dataset_columns.encode(columns),
                "source": str(folder.absolute()) if source is None else source,
                "parent_digest": latest[1] if latest else None,
                "created_at": utcnow(),
            }
            db.table("dataset_versions").insert(row)
            return _decoded(row), True

        row, created = self._registry.write(record)
        return AddResult({**row, "name": name}, created, imagefolder.ignored)

    def delete(self, workspace: str, ref: str, force: bool = False) -> tuple[str, Freed]:
        """Delete one version (`NAME@VERSION`): its row in one write, then its folder cache and
        the stored files no other version or run artifact names (those stored within the grace
        period stay for `appliance gc`). Returns the version's `NAME@N` and what was freed."""
        name, version_ref = split_ref(ref)
        if version_ref is None:
            raise InvalidInput(f"say which version of '{name}' to delete: {name}@VERSION")
        version = self.get(workspace, ref)
        label = f"{name}@{version['version']}"

        def remove(db: sqlite_utils.Database) -> None:
            hard, soft = blockers(db, version, name)
            if hard or (soft and not force):
                then = "" if hard else "; delete those first, or pass --force to delete it anyway"
                raise Conflict(f"dataset {label} is not deleted: " + "; ".join(hard or soft) + then)
            db.execute(
                "DELETE FROM dataset_versions WHERE dataset_id = ? AND digest = ?",
                [version["dataset_id"], version["digest"]],
            )
            record_event(
                db, self._workspaces.get(workspace)["id"], "dataset_version_deleted",
                f"dataset {label}", dataset_id=version["dataset_id"], digest=version["digest"],
                version=version["version"],
            )  # fmt: skip

        self._registry.write(remove)
        cache = self._cache / version["digest"]
        blobs = self._collector.dataset_blobs(version["digest"])
        return label, self._collector.free([*blobs, cache], exempt=[cache])

    def list(self, workspace: str) -> Rows:
        ws = self._workspaces.get(workspace)
        return self._registry.query(
            "SELECT d.id, d.name, d.created_at, count(v.digest) AS versions,"
            " max(v.version) AS latest_version"
            " FROM datasets d LEFT JOIN dataset_versions v ON v.dataset_id = d.id"
            " WHERE d.workspace_id = ? GROUP BY d.id ORDER BY d.name",
            (ws["id"],),
        )

    def versions(self, workspace: str, name: str) -> Rows:
        dataset = self._dataset(workspace, name)
        rows = self._registry.query(
            "SELECT * FROM dataset_versions WHERE dataset_id = ? ORDER BY version",
            (dataset["id"],),
        )
        return [{**_decoded(r), "name": name} for r in rows]

    def get(self, workspace: str, ref: str) -> dict[str, Any]:
        """Resolve `NAME`, `NAME@latest`, `NAME@3`, `NAME@v3` or `NAME@<digest prefix>`."""
        name, version_ref = split_ref(ref)
        versions = self.versions(workspace, name)
        if not versions:
            raise NotFound(f"dataset '{name}' has no versions")
        if version_ref is None or version_ref == "latest":
            return versions[-1]
        number = version_ref[1:] if version_ref[:1] in "vV" else version_ref
        if number.isascii() and number.isdigit() and len(number) < MIN_DIGEST_PREFIX:
            matches = [v for v in versions if v["version"] == int(number)]
        elif len(version_ref) >= MIN_DIGEST_PREFIX:
            matches = [v for v in versions if v["digest"].startswith(version_ref.lower())]
        else:
            raise InvalidInput(
                f"'{version_ref}' is neither a version number nor a digest prefix of "
                f"at least {MIN_DIGEST_PREFIX} characters"
            )
        if not matches:
            last = versions[-1]["version"]
            raise NotFound(f"dataset '{name}' has no version '{version_ref}' (versions 1..{last})")
        if len(matches) > 1:
            raise InvalidInput(f"'{version_ref}' matches several versions; give more digits")
        return matches[0]

    def by_digest(self, dataset_id: str, digest: str) -> dict[str, Any]:
        rows = self._registry.query(
            "SELECT v.*, d.name FROM dataset_versions v JOIN datasets d ON d.id = v.dataset_id"
            " WHERE v.dataset_id = ? AND v.digest = ?",
            (dataset_id, digest),
        )
        if not rows:
            raise NotFound(f"dataset version {digest[:12]} no longer exists")
        return _decoded(rows[0])

    def manifest(self, version: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """path → {sha256, size} for one version."""
        data = json.loads(self._store.read_bytes(version["digest"]))
        return {f["path"]: {"sha256": f["sha256"], "size": f["size"]} for f in data["files"]}

    def rows(self, version: dict[str, Any]) -> Rows:
        """The version's metadata.jsonl rows."""
        return dataset_columns.stored_rows(self._store, version["digest"])

    def diff(self, workspace: str, ref_a: str, ref_b: str) -> dict[str, Any]:
        """Images added, removed and changed, and rows relabelled (their `text` changed); for a
        text dataset, rows added, removed and relabelled (their `label` or `text` changed),
        named by id (else by text). `rows_changed` names the rows on both sides whose other
        metadata changed (their `keywords`, say). `labels` counts the rows of each label on both
        sides ({label: {"from": n, "to": m}}), for rows that have one (a text dataset's);
        `schema` the columns added, removed, and those in more or fewer rows, not counting one
        in every row on both sides (columns.py)."""
        a, b = self.get(workspace, ref_a), self.get(workspace, ref_b)
        files_a, files_b = self.manifest(a), self.manifest(b)
        listed_a, listed_b = self.rows(a), self.rows(b)
        rows_a = {row_key(r): r for r in listed_a}
        rows_b = {row_key(r): r for r in listed_b}
        fields: tuple[str, ...]
        if files_a.keys() == files_b.keys() == {METADATA}:  # text rows
            names_a, names_b, changed = rows_a.keys(), rows_b.keys(), set()
            fields = ("label", "text")
        else:
            names_a, names_b, fields = files_a.keys(), files_b.keys(), ("text",)
            changed = {p for p in names_a & names_b if files_a[p]["sha256"] != files_b[p]["sha256"]}
        return {
            "from": {"name": a["name"], "version": a["version"], "digest": a["digest"]},
            "to": {"name": b["name"], "version": b["version"], "digest": b["digest"]},
            "added": sorted(names_b - names_a),
            "removed": sorted(names_a - names_b),
            "changed": sorted(changed - {METADATA}),
            "relabelled": sorted(
                k for k in rows_a.keys() & rows_b.keys()
                if any(rows_a[k].get(f) != rows_b[k].get(f) for f in fields)
            ),
            "rows_changed": sorted(
                k for k in rows_a.keys() & rows_b.keys()
                if _other_metadata(rows_a[k], fields) != _other_metadata(rows_b[k], fields)
            ),
            "labels": _label_counts(listed_a, listed_b),
            "schema": dataset_columns.schema_change(
                dataset_columns.count_columns(listed_a), dataset_columns.count_columns(listed_b),
                len(listed_a), len(listed_b),
            ),
        }  # fmt: skip

    def materialize(self, version: dict[str, Any]) -> Path:
        """The version laid out as an imagefolder under the home (built once, then reused)."""
        target = self._cache / version["digest"]
        if target.is_dir():
            return target
        building = self._cache / f".{version['digest']}.{new_id()}"
        try:
            for rel, entry in self.manifest(version).items():
                self._store.link_into(entry["sha256"], building / rel)
            self._cache.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(building, target)
            except OSError:  # another process finished first: theirs is identical
                if not target.is_dir():
                    raise
        finally:
            shutil.rmtree(building, ignore_errors=True)
        return target

    def _dataset(self, workspace: str, name: str) -> dict[str, Any]:
        ws = self._workspaces.get(workspace)
        dataset = _find_dataset(self._registry.db, ws["id"], name)
        if dataset is None:
            raise NotFound(f"no dataset '{name}' in workspace '{workspace}'")
        return dataset


def _decoded(row: dict[str, Any]) -> dict[str, Any]:
    """A dataset_versions row with its `columns` as a dict."""
    return {**row, "columns": dataset_columns.decode(row.get("columns"))}


def _other_metadata(row: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """What a row says besides its name and the relabelling `fields`; an empty value is the
    same as none."""
    skip = {*dataset_columns.KEYS, *fields}
    return {k: v for k, v in row.items() if k not in skip and dataset_columns.has_value(v)}


def _label_counts(
    rows_a: Iterable[dict[str, Any]], rows_b: Iterable[dict[str, Any]]
) -> dict[str, dict[str, int]]:
    """{label: {"from": rows in a, "to": rows in b}} for every label either side has."""

    def count(rows: Iterable[dict[str, Any]]) -> Counter[str]:
        return Counter(r["label"] for r in rows if isinstance(r.get("label"), str))

    a, b = count(rows_a), count(rows_b)
    return {label: {"from": a[label], "to": b[label]} for label in sorted(a.keys() | b.keys())}


def _find_dataset(db: sqlite_utils.Database, workspace_id: str, name: str) -> dict[str, Any] | None:
    return first_row(db, "datasets", "workspace_id = ? AND name = ?", [workspace_id, name])


def read_dataset_folder(folder: Path, max_image_pixels: int) -> ImageFolder | TextRows:
    """An imagefolder (images named by `metadata.jsonl`), or a text dataset (its rows hold the
    text), told apart by the first row."""
    if folder.is_dir() and is_text_rows(folder):
        return read_text_rows(folder)
    return read_imagefolder(folder, max_image_pixels)
