"""Platform ratings: what people think of the appliance itself (not of one prediction), a 1-5
rating with an optional comment, given from the CLI, the TUI or HTTP, and their summary over a
window: count, mean, histogram, a trend by time bucket and the latest comments."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

import sqlite_utils

from appliance.errors import InvalidInput, NotFound
from appliance.registry import Registry, Rows, utcnow

MAX_COMMENT = 2000
SOURCES = ("cli", "tui", "http", "client")
MAX_BUCKETS = 60
LATEST_COMMENTS = 5


def check(rating: object, comment: object) -> tuple[int, str]:
    """The rating and comment as stored, or InvalidInput saying what is wrong with them."""
    if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
        raise InvalidInput(f"rating must be a whole number from 1 to 5, got {rating!r}")
    if comment is None:
        comment = ""
    if not isinstance(comment, str):
        raise InvalidInput(f"comment must be text, got {type(comment).__name__}")
    if len(comment) > MAX_COMMENT:
        raise InvalidInput(
            f"comment is {len(comment):,} characters; at most {MAX_COMMENT:,} are kept"
        )
    return rating, comment.strip()


class PlatformFeedback:
    def __init__(self, registry: Registry):
        self._registry = registry

    def add(
        self,
        rating: object,
        comment: object = "",
        *,
        source: str,
        user: str = "",
        workspace: str | None = None,
    ) -> dict[str, Any]:
        """Store one rating; a bad rating, a too long comment or an unknown workspace raise
        before anything is written."""
        value, text = check(rating, comment)
        if source not in SOURCES:
            raise InvalidInput(f"source must be one of {', '.join(SOURCES)}, got {source!r}")

        def insert(db: sqlite_utils.Database) -> dict[str, Any]:
            workspace_id = None
            if workspace:
                found = db.execute("SELECT id FROM workspaces WHERE name = ?", [workspace])
                row = found.fetchone()
                if row is None:
                    raise NotFound(f"no workspace '{workspace}' (see `appliance workspace list`)")
                workspace_id = row[0]
            record = {
                "rating": value, "comment": text, "source": source, "user": user[:200],
                "workspace_id": workspace_id, "created_at": utcnow(),
            }  # fmt: skip
            table = db.table("platform_feedback")
            table.insert(record)
            return {"id": table.last_rowid, **record, "workspace": workspace or None}

        return self._registry.write(insert)

    def list(self, limit: int = 50) -> Rows:
        """The latest ratings, newest first."""
        if not 1 <= limit <= 1000:
            raise InvalidInput(f"limit must be from 1 to 1000, got {limit}")
        return self._registry.query(
            f"{_SELECT} ORDER BY f.created_at DESC, f.id DESC LIMIT ?", (limit,)
        )

    def summary(self, since: datetime, until: datetime) -> dict[str, Any]:
        """Ratings given in [since, until): count, mean, histogram, trend and latest comments."""
        rows = self._registry.query(
            f"{_SELECT} WHERE f.created_at >= ? AND f.created_at < ? ORDER BY f.created_at",
            (iso(since), iso(until)),
        )
        ratings = [r["rating"] for r in rows]
        commented = [r for r in reversed(rows) if r["comment"]][:LATEST_COMMENTS]
        return {
            "count": len(ratings),
            "mean": _mean(ratings),
            "histogram": {str(n): ratings.count(n) for n in range(1, 6)},
            "bucket_s": (step := bucket_seconds(since, until)),
            "trend": _trend(rows, since, until, step),
            "latest_comments": [
                {k: r[k] for k in ("rating", "comment", "user", "workspace", "created_at")}
                for r in commented
            ],
        }


_SELECT = (
    "SELECT f.id, f.rating, f.comment, f.source, f.user, f.workspace_id, w.name AS workspace,"
    " f.created_at FROM platform_feedback f LEFT JOIN workspaces w ON w.id = f.workspace_id"
)


def iso(moment: datetime) -> str:
    """A moment as the registry's timestamp text (comparable with stored `created_at`)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def bucket_seconds(since: datetime, until: datetime) -> int:
    """Hours for a window under three days, days above, widened to at most MAX_BUCKETS."""
    span = max((until - since).total_seconds(), 1.0)
    unit = 3600 if span < 3 * 86_400 else 86_400
    return max(unit, math.ceil(span / MAX_BUCKETS / unit) * unit)


def _trend(rows: Rows, since: datetime, until: datetime, step: int) -> list[dict[str, Any]]:
    count = max(1, math.ceil((until - since).total_seconds() / step))
    buckets: list[list[int]] = [[] for _ in range(count)]
    for row in rows:
        at = datetime.fromisoformat(row["created_at"].replace("Z", "+00:00"))
        index = min(int((at - since).total_seconds() // step), count - 1)
        buckets[index].append(row["rating"])
    return [
        {"start": iso(since + timedelta(seconds=i * step)), "count": len(b), "mean": _mean(b)}
        for i, b in enumerate(buckets)
    ]


def _mean(values: list[int]) -> float | None:
    return round(sum(values) / len(values), 3) if values else None
