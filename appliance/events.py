"""The event log: every change to an alias or a deployment is a row, in order.

DORA metrics and the monitoring timeline are computed from these rows, so writers record an event
in the same transaction as the change it describes.
"""

from __future__ import annotations

import json
from typing import Any

import sqlite_utils

from appliance.access.actor import current_actor
from appliance.registry import Registry, Rows, utcnow


def record_event(
    db: sqlite_utils.Database,
    workspace_id: str,
    kind: str,
    subject: str = "",
    *,
    model_version_id: str | None = None,
    deployment_id: str | None = None,
    **detail: Any,
) -> None:
    """Append an event; call it inside the write job that makes the change. Its actor is who
    the code acts for (`appliance/access/actor.py`): a user of the server, or `local`."""
    db.execute(
        "INSERT INTO events (workspace_id, kind, subject, model_version_id, deployment_id,"
        " detail, created_at, actor) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            workspace_id,
            kind,
            subject,
            model_version_id,
            deployment_id,
            json.dumps(detail, sort_keys=True),
            utcnow(),
            current_actor(),
        ),
    )


class Events:
    def __init__(self, registry: Registry):
        self._registry = registry

    def list(self, workspace_id: str, limit: int = 200) -> Rows:
        rows = self._registry.query(
            "SELECT * FROM events WHERE workspace_id = ? ORDER BY id DESC LIMIT ?",
            (workspace_id, limit),
        )
        for row in rows:
            row["detail"] = json.loads(row["detail"])
        return rows

    def latest(self, workspace_id: str, kinds: tuple[str, ...]) -> dict[str, dict[str, Any]]:
        """Per subject, its newest event of one of `kinds` (e.g. who last deployed each
        endpoint: `latest(ws, ("deployed", "rolled_back"))`), detail parsed."""
        marks = ", ".join("?" for _ in kinds)
        rows = self._registry.query(
            "SELECT * FROM events WHERE id IN (SELECT MAX(id) FROM events"
            f" WHERE workspace_id = ? AND kind IN ({marks}) GROUP BY subject)",
            (workspace_id, *kinds),
        )
        for row in rows:
            row["detail"] = json.loads(row["detail"])
        return {row["subject"]: row for row in rows}
