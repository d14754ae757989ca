"""The review queue's records (`review_items`) and the inputs they keep: a photo as
`<home>/review/<workspace id>/<item id>.png` (written to a temporary name, then renamed), a
text in its row. Keeping an input counts its bytes against `review_max_bytes`; past it the
oldest pending items go, row and file. A person's review (accept, correct, dismiss) happens
once; a dismissed item's input is let go at once, an exported one's when it is exported."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlite_utils

from appliance.errors import Conflict, InvalidInput, NotFound, TooLarge
from appliance.monitoring.predictions import since_text
from appliance.registry import Rows, new_id, utcnow
from appliance.review.candidate import Candidate, png
from appliance.services import Services

FOLDER = "review"
STATUSES = ("pending", "accepted", "corrected", "dismissed")
ACTIONS = {"accept": "accepted", "correct": "corrected", "dismiss": "dismissed"}
MAX_CORRECTION = 2000
MAX_LIST = 1000
STRAY_AGE_S = 3600
"""A file under review/ without its row is only removed once this old: it may be an input
whose row is being written right now."""

_COLUMNS = (
    "id", "workspace_id", "endpoint", "prediction_id", "model_version_id", "reason", "kind",
    "input_file", "input_text", "fields", "answer", "answer_field", "confidence", "warnings",
    "status", "bytes", "created_at",
)  # fmt: skip


class Reviews:
    def __init__(self, services: Services):
        self._services = services
        self._registry = services.registry
        self._home = services.settings.home
        self.folder = self._home / FOLDER

    # -- keeping -----------------------------------------------------------------------------

    def keep(self, candidates: Sequence[tuple[Candidate, str]], max_bytes: int) -> tuple[int, int]:
        """Queue each (candidate, reason) for review, once per prediction, in one transaction,
        then trim to `max_bytes`. Returns (how many were queued, how many the budget trimmed)."""
        if max_bytes <= 0 or not candidates:
            return 0, 0
        ids = [c.prediction_id for c, _ in candidates]
        known = {
            r["prediction_id"]
            for r in self._registry.query(
                "SELECT prediction_id FROM review_items"
                f" WHERE prediction_id IN ({', '.join('?' * len(ids))})",
                tuple(ids),
            )
        }
        workspaces: dict[str, str] = {}
        rows: list[dict[str, Any]] = []
        try:
            for candidate, reason in candidates:
                if candidate.prediction_id in known:
                    continue
                known.add(candidate.prediction_id)
                if candidate.workspace not in workspaces:
                    found = self._services.workspaces.get(candidate.workspace)
                    workspaces[candidate.workspace] = found["id"]
                rows.append(self._stored(candidate, reason, workspaces[candidate.workspace]))
            sql = (
                f"INSERT OR IGNORE INTO review_items ({', '.join(_COLUMNS)})"
                f" VALUES ({', '.join(':' + c for c in _COLUMNS)})"
            )

            def insert(db: sqlite_utils.Database) -> list[bool]:
                return [db.execute(sql, row).rowcount > 0 for row in rows]

            inserted = self._registry.write(insert) if rows else []
        except BaseException:
            for row in rows:
                _remove(self._home / row["input_file"] if row["input_file"] else None)
            raise
        for row, fresh in zip(rows, inserted, strict=True):
            if not fresh and row["input_file"]:  # queued meanwhile by the other path
                _remove(self._home / row["input_file"])
        queued = sum(inserted)
        return queued, self.trim(max_bytes) if queued else 0

    def _stored(self, candidate: Candidate, reason: str, workspace_id: str) -> dict[str, Any]:
        """The row of one candidate, its photo written to its file first."""
        item_id = new_id()
        row: dict[str, Any] = {
            "id": item_id, "workspace_id": workspace_id, "endpoint": candidate.endpoint,
            "prediction_id": candidate.prediction_id,
            "model_version_id": candidate.model_version_id, "reason": reason,
            "kind": candidate.kind, "input_file": None, "input_text": candidate.text,
            "fields": json.dumps(candidate.fields, sort_keys=True), "answer": candidate.answer,
            "answer_field": candidate.answer_field, "confidence": candidate.confidence,
            "warnings": json.dumps(candidate.warnings), "status": "pending",
            "bytes": len((candidate.text or "").encode()), "created_at": utcnow(),
        }  # fmt: skip
        if candidate.image is not None:
            relative = f"{FOLDER}/{workspace_id}/{item_id}.png"
            row["bytes"] = _write_file(self._home / relative, png(candidate.image))
            row["input_file"] = relative
        return row

    def trim(self, max_bytes: int) -> int:
        """Delete the oldest pending items (row and input) until the kept inputs fit
        `max_bytes`; reviewed items awaiting export are a person's work and stay. Returns how
        many went."""

        total = self._registry.query("SELECT COALESCE(SUM(bytes), 0) AS n FROM review_items")
        if total[0]["n"] <= max_bytes:  # read first: a write transaction only when over
            return 0

        def pick(db: sqlite_utils.Database) -> Sequence[tuple[str, str | None]]:
            total = db.execute("SELECT COALESCE(SUM(bytes), 0) FROM review_items").fetchone()[0]
            if total <= max_bytes:
                return []
            candidates = db.execute(
                "SELECT id, input_file, bytes FROM review_items"
                " WHERE status = 'pending' AND bytes > 0 ORDER BY created_at, rowid"
            ).fetchall()
            gone: list[tuple[str, str | None]] = []
            for item_id, input_file, size in candidates:
                if total <= max_bytes:
                    break
                gone.append((item_id, input_file))
                total -= size
            db.conn.executemany("DELETE FROM review_items WHERE id = ?", [(i,) for i, _ in gone])
            return gone

        gone = self._registry.write(pick)
        for _, input_file in gone:
            _remove(self._home / input_file if input_file else None)
        return len(gone)

    # -- reading -----------------------------------------------------------------------------

    def list(
        self,
        workspace: str,
        endpoint: str | None = None,
        status: str = "pending",
        limit: int = 50,
        oldest_first: bool = False,
    ) -> Rows:
        """The items of `workspace` (at `endpoint`) in `status` ('all': any), newest first."""
        if status != "all" and status not in STATUSES:
            raise InvalidInput(
                f"status must be one of {', '.join(STATUSES)} or all, got {status!r}"
            )
        if not 1 <= limit <= MAX_LIST:
            raise InvalidInput(f"limit must be from 1 to {MAX_LIST}, got {limit}")
        ws = self._services.workspaces.get(workspace)
        sql = "SELECT r.*, ? AS workspace FROM review_items r WHERE r.workspace_id = ?"
        params: list[Any] = [ws["name"], ws["id"]]
        if endpoint is not None:
            sql += " AND r.endpoint = ?"
            params.append(endpoint)
        if status != "all":
            sql += " AND r.status = ?"
            params.append(status)
        order = "ASC" if oldest_first else "DESC"
        sql += f" ORDER BY r.created_at {order}, r.rowid {order} LIMIT ?"
        params.append(limit)
        return [_decode(r) for r in self._registry.query(sql, tuple(params))]

    def counts(self, workspace: str, endpoint: str | None = None) -> dict[str, int]:
        """How many items of each status (and 'exported' among the reviewed ones)."""
        ws = self._services.workspaces.get(workspace)
        sql = (
            "SELECT status, COUNT(*) AS n, COUNT(exported_to) AS exported FROM review_items"
            " WHERE workspace_id = ?"
        )
        params: list[Any] = [ws["id"]]
        if endpoint is not None:
            sql += " AND endpoint = ?"
            params.append(endpoint)
        rows = self._registry.query(sql + " GROUP BY status", tuple(params))
        counts = {status: 0 for status in STATUSES} | {r["status"]: r["n"] for r in rows}
        return {**counts, "exported": sum(r["exported"] for r in rows)}

    def endpoints(self, workspace: str) -> dict[str, int]:
        """Each endpoint of `workspace` that is deployed or has items: its pending items."""
        ws = self._services.workspaces.get(workspace)
        rows = self._registry.query(
            "SELECT endpoint, SUM(status = 'pending') AS pending FROM review_items"
            " WHERE workspace_id = ? GROUP BY endpoint",
            (ws["id"],),
        )
        found = {d["endpoint"]: 0 for d in self._services.deployments.list(workspace)}
        return dict(sorted((found | {r["endpoint"]: int(r["pending"]) for r in rows}).items()))

    def get(self, item_id: str) -> dict[str, Any]:
        rows = self._registry.query(
            "SELECT r.*, w.name AS workspace FROM review_items r"
            " JOIN workspaces w ON w.id = r.workspace_id WHERE r.id = ?",
            (item_id,),
        )
        if not rows:
            raise NotFound(f"no review item '{item_id}' (unknown, trimmed, or past retention)")
        return _decode(rows[0])

    def input_path(self, item: dict[str, Any]) -> Path | None:
        """Where an image item's PNG is, while it is kept."""
        return self._home / item["input_file"] if item.get("input_file") else None

    def input(self, item_id: str) -> tuple[bytes, str]:
        """The kept input and its media type: the PNG, or the text."""
        item = self.get(item_id)
        if item["kind"] == "text" and item["input_text"] is not None:
            return str(item["input_text"]).encode(), "text/plain; charset=utf-8"
        path = self.input_path(item)
        if path is not None:
            try:
                return path.read_bytes(), "image/png"
            except FileNotFoundError:
                pass
        raise NotFound(
            f"the input of review item '{item_id}' is no longer kept (it was {item['status']}"
            f"{', exported' if item['exported_to'] else ''})"
        )

    # -- a person's review -------------------------------------------------------------------

    def review(
        self, item_id: str, action: str, text: str | None = None, by: str = ""
    ) -> dict[str, Any]:
        """Accept the answer, correct it with `text`, or dismiss the item; once per item.
        Everything is checked before anything is written."""
        if action not in ACTIONS:
            raise InvalidInput(f"action must be accept, correct or dismiss, got {action!r}")
        correction = check_correction(text) if action == "correct" else None
        if action != "correct" and text:
            raise InvalidInput(f"only 'correct' takes a text; '{action}' takes none")
        item = self.get(item_id)
        if item["status"] != "pending":
            raise Conflict(f"review item '{item_id}' was already {item['status']}")
        if correction is not None and item["answer_field"] == "label":
            labels = self.labels(item["model_version_id"])
            if labels and correction not in labels:
                raise InvalidInput(
                    f"'{correction}' is not a label the model knows: {', '.join(sorted(labels))}"
                )
        status, let_go = ACTIONS[action], action == "dismiss"
        forget = ", input_file = NULL, input_text = NULL, bytes = 0" if let_go else ""

        def write(db: sqlite_utils.Database) -> None:
            changed = db.execute(
                "UPDATE review_items SET status = ?, correction = ?, reviewed_at = ?,"
                f" reviewed_by = ?{forget} WHERE id = ? AND status = 'pending'",
                [status, correction, utcnow(), by[:100], item_id],
            ).rowcount
            if not changed:  # reviewed (or trimmed) since it was read
                raise Conflict(f"review item '{item_id}' was reviewed or trimmed meanwhile")

        self._registry.write(write)
        if let_go:
            _remove(self.input_path(item))
        return self.get(item_id)

    def labels(self, version_id: str | None) -> set[str]:
        """The labels a version can answer: from its folder's config when registered, else
        those of the dataset version it was trained on; empty when neither is known."""
        if version_id is None:
            return set()
        rows = self._registry.query(
            "SELECT info, dataset_id, dataset_digest FROM model_versions WHERE id = ?",
            (version_id,),
        )
        if not rows:
            return set()
        info = json.loads(rows[0]["info"] or "{}")
        if info.get("labels"):
            return {str(label) for label in info["labels"]}
        if not rows[0]["dataset_digest"]:
            return set()
        datasets = self._services.datasets
        try:
            version = datasets.by_digest(rows[0]["dataset_id"], rows[0]["dataset_digest"])
            return {str(r["label"]) for r in datasets.rows(version) if "label" in r}
        except NotFound:
            return set()

    def mark_exported(self, item_ids: Sequence[str], ref: str) -> None:
        """Record that the items are rows of dataset version `ref`; their inputs now live in the
        dataset's artifacts, so the queue lets its copies go."""
        rows = self._registry.query(
            f"SELECT input_file FROM review_items WHERE id IN ({', '.join('?' * len(item_ids))})",
            tuple(item_ids),
        )
        self._registry.write(
            lambda db: db.conn.executemany(
                "UPDATE review_items SET exported_to = ?, input_file = NULL, input_text = NULL,"
                " bytes = 0 WHERE id = ?",
                [(ref, i) for i in item_ids],
            )
        )
        for row in rows:
            _remove(self._home / row["input_file"] if row["input_file"] else None)

    # -- retention ---------------------------------------------------------------------------

    def prune(self, retention_days: int) -> int:
        """Delete items older than `retention_days` with their inputs, and what a crash or a
        deleted workspace left under review/. Returns the items deleted."""
        cutoff = since_text(retention_days * 86_400)

        def delete(db: sqlite_utils.Database) -> Sequence[str | None]:
            files = [
                r[0]
                for r in db.execute(
                    "SELECT input_file FROM review_items WHERE created_at < ?", [cutoff]
                ).fetchall()
            ]
            db.execute("DELETE FROM review_items WHERE created_at < ?", [cutoff])
            return files

        files = self._registry.write(delete)
        for input_file in files:
            _remove(self._home / input_file if input_file else None)
        self._sweep()
        return len(files)

    def _sweep(self) -> None:
        if not self.folder.is_dir():
            return
        workspaces = {r["id"] for r in self._registry.query("SELECT id FROM workspaces")}
        kept = {
            r["input_file"]
            for r in self._registry.query(
                "SELECT input_file FROM review_items WHERE input_file IS NOT NULL"
            )
        }
        stale = time.time() - STRAY_AGE_S
        for entry in self.folder.iterdir():
            if entry.is_dir() and not entry.name.startswith(".") and entry.name in workspaces:
                for file in entry.iterdir():
                    relative = f"{FOLDER}/{entry.name}/{file.name}"
                    if relative not in kept and _mtime(file) < stale:
                        _remove(file)
            elif _mtime(entry) < stale:  # a deleted workspace's, or an export's leftovers
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else _remove(entry)


def check_correction(text: str | None) -> str:
    """A correction's text, stripped: not empty, at most MAX_CORRECTION characters."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("a correction needs its text: the right description or label")
    if len(text) > MAX_CORRECTION:
        raise TooLarge(
            f"a correction is at most {MAX_CORRECTION} characters; this one has {len(text):,}"
        )
    return text.strip()


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    for name in ("fields", "warnings"):
        if isinstance(row.get(name), str):
            row[name] = json.loads(row[name])
    row["has_input"] = bool(row.get("input_file") or row.get("input_text") is not None)
    return row


def _write_file(path: Path, data: bytes) -> int:
    """Write `data` to `path` through a temporary name beside it, so no reader ever sees
    half a file. Not fsynced (it runs on the capture thread, per kept input): after an OS crash
    a file may be empty, and an export checks every image it adds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{new_id()}")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    except BaseException:
        _remove(temporary)
        raise
    return len(data)


def _remove(path: Path | None) -> None:
    if path is not None:
        path.unlink(missing_ok=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return time.time()
