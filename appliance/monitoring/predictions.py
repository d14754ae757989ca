"""Captured predictions and their feedback, as records: read a window of traffic, store a rating,
summarize ratings, and enforce retention."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlite_utils

from appliance.errors import InvalidInput, NotFound
from appliance.registry import Registry, Rows, utcnow
from appliance.tasks.keywords import parse_keywords
from appliance.workspaces import Workspaces

log = logging.getLogger("appliance.monitoring")

THUMBS = ("up", "down")
MAX_COMMENT = 2000


def since_text(window_s: float, now: datetime | None = None) -> str:
    """The ISO timestamp `window_s` seconds before now, comparable with stored `created_at`."""
    start = (now or datetime.now(UTC)) - timedelta(seconds=window_s)
    return start.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Predictions:
    def __init__(self, registry: Registry, workspaces: Workspaces):
        self._registry = registry
        self._workspaces = workspaces
        self.feedback_listeners: list[Callable[[dict[str, Any]], None]] = []
        """Told of each stored feedback row, after its commit (the server's review queue)."""

    def get(self, prediction_id: str) -> dict[str, Any]:
        rows = self._registry.query(
            "SELECT p.*, w.name AS workspace FROM predictions p"
            " JOIN workspaces w ON w.id = p.workspace_id WHERE p.id = ?",
            (prediction_id,),
        )
        if not rows:
            raise NotFound(f"no prediction '{prediction_id}' (unknown, or past retention)")
        return _decode(rows[0])

    def window(
        self, workspace: str, endpoint: str | None = None, since: str = "", limit: int = 100_000
    ) -> Rows:
        """The newest `limit` predictions since `since` (ISO text), oldest first, with their
        mean rating, how many of their feedback rows named ignored keywords, and what a reviewer
        made of them (`review`: accepted, corrected, dismissed or pending; None when never
        queued for review)."""
        ws = self._workspaces.get(workspace)
        sql = (
            "SELECT p.id, p.endpoint, p.model_version_id, p.created_at, p.latency_ms,"
            " p.queue_ms, p.inference_ms, p.batch_size, p.features, p.keywords, p.description,"
            " p.output,"
            " p.confidence, p.warnings, p.error,"
            " (SELECT AVG(f.rating) FROM feedback f WHERE f.prediction_id = p.id) AS rating,"
            " (SELECT COUNT(*) FROM feedback f WHERE f.prediction_id = p.id"
            " AND f.ignored_keywords NOT IN ('[]', '')) AS ignored_feedback,"
            " (SELECT r.status FROM review_items r WHERE r.prediction_id = p.id) AS review"
            " FROM predictions p WHERE p.workspace_id = ? AND p.created_at >= ?"
        )
        params: list[Any] = [ws["id"], since]
        if endpoint is not None:
            sql += " AND p.endpoint = ?"
            params.append(endpoint)
        sql += " ORDER BY p.created_at DESC, p.rowid DESC LIMIT ?"
        params.append(limit)
        rows = self._registry.query(sql, tuple(params))
        rows.reverse()  # newest first to take the newest `limit`; oldest first to return
        return [_decode(r) for r in rows]

    def embeddings(
        self, workspace: str, endpoint: str, version_id: str, since: str = "", limit: int = 500
    ) -> list[bytes]:
        """The stored embeddings (float16 blobs of one row each) of the newest `limit` answered
        predictions of `version_id` at `endpoint` since `since`, newest first. Only this reads
        the embedding column: `window` never carries blobs."""
        ws = self._workspaces.get(workspace)
        rows = self._registry.query(
            "SELECT embedding FROM predictions WHERE workspace_id = ? AND endpoint = ?"
            " AND created_at >= ? AND model_version_id = ? AND error IS NULL"
            " AND embedding IS NOT NULL ORDER BY created_at DESC, rowid DESC LIMIT ?",
            (ws["id"], endpoint, since, version_id, limit),
        )
        return [bytes(r["embedding"]) for r in rows]

    def recent(self, workspace: str, endpoint: str | None = None, limit: int = 20) -> Rows:
        return self.window(workspace, endpoint, since="", limit=limit)

    def thumbnail(self, prediction_id: str) -> bytes | None:
        rows = self._registry.query(
            "SELECT thumbnail FROM predictions WHERE id = ?", (prediction_id,)
        )
        if not rows:
            raise NotFound(f"no prediction '{prediction_id}'")
        value = rows[0]["thumbnail"]
        return bytes(value) if value is not None else None

    # -- feedback ----------------------------------------------------------------------------

    def add_feedback(
        self,
        prediction_id: str,
        rating: int | None = None,
        thumb: str | None = None,
        comment: str = "",
        ignored_keywords: Sequence[str] = (),
    ) -> dict[str, Any]:
        """Store one piece of feedback; returns only after the row is committed.
        `ignored_keywords` names keywords the prediction was given that its answer left out."""
        if rating is None and thumb is None and not ignored_keywords:
            raise InvalidInput(
                "give a rating (1-5), a thumb ('up' or 'down'), or the ignored keywords"
            )
        if isinstance(ignored_keywords, str) or not all(
            isinstance(k, str) for k in ignored_keywords
        ):
            raise InvalidInput("ignored_keywords must be a list of keywords the request gave")
        ignored = parse_keywords(list(ignored_keywords))
        if rating is not None and (
            isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5
        ):
            raise InvalidInput(f"rating must be a whole number from 1 to 5, got {rating!r}")
        if thumb is not None and thumb not in THUMBS:
            raise InvalidInput(f"thumb must be 'up' or 'down', got {thumb!r}")
        if not isinstance(comment, str) or len(comment) > MAX_COMMENT:
            raise InvalidInput(f"comment must be text of at most {MAX_COMMENT} characters")

        def write(db: sqlite_utils.Database) -> dict[str, Any]:
            found = db.execute(
                "SELECT keywords FROM predictions WHERE id = ?", [prediction_id]
            ).fetchone()
            if found is None:
                raise NotFound(f"no prediction '{prediction_id}' (unknown, or past retention)")
            given = parse_keywords(found[0])
            if unknown := [k for k in ignored if k not in given]:
                offered = ", ".join(given) if given else "none"
                raise InvalidInput(
                    f"the prediction was not given the keyword(s) {', '.join(unknown)} "
                    f"(it was given: {offered})"
                )
            row: dict[str, Any] = {
                "prediction_id": prediction_id,
                "rating": rating,
                "thumb": thumb,
                "comment": comment,
                "ignored_keywords": json.dumps(ignored),
                "created_at": utcnow(),
            }
            cursor = db.execute(
                "INSERT INTO feedback (prediction_id, rating, thumb, comment, ignored_keywords,"
                " created_at) VALUES (:prediction_id, :rating, :thumb, :comment,"
                " :ignored_keywords, :created_at)",
                row,
            )
            row["id"] = cursor.lastrowid
            row["ignored_keywords"] = ignored
            return row

        stored = self._registry.write(write)
        for listener in list(self.feedback_listeners):
            try:
                listener(dict(stored))
            except Exception:  # the feedback is stored: a listener's failure is only logged
                log.exception("a feedback listener failed on prediction %s", prediction_id)
        return stored

    def feedback(
        self, workspace: str, endpoint: str | None = None, since: str = "", limit: int = 50
    ) -> Rows:
        """Feedback rows, newest first, with the prediction they rate."""
        ws = self._workspaces.get(workspace)
        sql = (
            "SELECT f.*, p.endpoint, p.description, p.confidence, p.warnings, p.model_version_id"
            " FROM feedback f JOIN predictions p ON p.id = f.prediction_id"
            " WHERE p.workspace_id = ? AND f.created_at >= ?"
        )
        params: list[Any] = [ws["id"], since]
        if endpoint is not None:
            sql += " AND p.endpoint = ?"
            params.append(endpoint)
        sql += " ORDER BY f.id DESC LIMIT ?"
        params.append(limit)
        return [_decode(r) for r in self._registry.query(sql, tuple(params))]

    def feedback_summary(
        self, workspace: str, endpoint: str | None = None, since: str = ""
    ) -> dict[str, Any]:
        """Count, mean rating, the 1..5 histogram, thumbs up/down, and how many said a
        keyword was ignored."""
        ws = self._workspaces.get(workspace)
        sql = (
            "SELECT f.rating, f.thumb, f.ignored_keywords FROM feedback f"
            " JOIN predictions p ON p.id = f.prediction_id"
            " WHERE p.workspace_id = ? AND f.created_at >= ?"
        )
        params: list[Any] = [ws["id"], since]
        if endpoint is not None:
            sql += " AND p.endpoint = ?"
            params.append(endpoint)
        rows = self._registry.query(sql, tuple(params))
        ratings = [r["rating"] for r in rows if r["rating"] is not None]
        return {
            "count": len(rows),
            "mean_rating": round(sum(ratings) / len(ratings), 3) if ratings else None,
            "histogram": {str(n): ratings.count(n) for n in range(1, 6)},
            "thumbs_up": sum(1 for r in rows if r["thumb"] == "up"),
            "thumbs_down": sum(1 for r in rows if r["thumb"] == "down"),
            "keywords_ignored": sum(1 for r in rows if r["ignored_keywords"] not in ("[]", "")),
        }

    # -- retention ---------------------------------------------------------------------------

    def prune(self, retention_days: int, max_rows: int) -> int:
        """Delete predictions past retention or beyond `max_rows` (oldest first); their
        feedback goes with them. Returns the number deleted."""
        cutoff = since_text(retention_days * 86_400)

        def delete(db: sqlite_utils.Database) -> int:
            old = db.execute("DELETE FROM predictions WHERE created_at < ?", [cutoff]).rowcount
            over = db.execute(
                "DELETE FROM predictions WHERE rowid IN (SELECT rowid FROM predictions"
                " ORDER BY created_at DESC, rowid DESC LIMIT -1 OFFSET ?)",
                [max_rows],
            ).rowcount
            return int(old + over)

        return self._registry.write(delete)


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    for name in ("warnings", "features", "output", "ignored_keywords"):
        if isinstance(row.get(name), str):
            row[name] = json.loads(row[name])
    row.pop("thumbnail", None)  # blobs: read on their own (`thumbnail`, `embeddings`)
    row.pop("embedding", None)
    return row


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_window(text: str) -> int:
    """'90s', '30m', '1h', '7d', '2w' or plain seconds → seconds."""
    value = text.strip().lower()
    unit = _UNITS.get(value[-1:]) if value else None
    number = value[:-1] if unit else value
    if not (number.isascii() and number.isdigit()) or int(number) == 0:  # "³" is a digit
        raise InvalidInput(f"window '{text}' is not a duration: use e.g. 90s, 30m, 1h, 7d or 2w")
    return int(number) * (unit or 1)
