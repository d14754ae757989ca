"""The audit trail of a workspace: who changed what. Two sources, merged newest first:

- the events (`appliance/events.py`): deploys, rollbacks, promotions, aliases, approvals, each
  with its actor (a user of the server, `admin`, or `local` for the CLI on the box);
- every write request the server answered (`appliance/server/audit.py`), refused ones too:
  who sent it, the route, the status.
"""

from __future__ import annotations

import json
from typing import Any

import sqlite_utils

from appliance.registry import Registry, Rows, utcnow


def record_request(
    db: sqlite_utils.Database,
    *,
    actor: str,
    role: str,
    method: str,
    path: str,
    status: int,
    workspace: str | None,
    client: str,
) -> None:
    db.table("audit").insert(
        {
            "created_at": utcnow(),
            "actor": actor,
            "role": role,
            "method": method,
            "path": path[:500],
            "status": status,
            "workspace": workspace,
            "client": client,
        }
    )


class Audit:
    def __init__(self, registry: Registry):
        self._registry = registry

    def trail(self, workspace: str, limit: int = 200, actor: str | None = None) -> Rows:
        """The newest `limit` entries of `workspace`, as `{at, actor, what, detail}`."""
        who = "" if actor is None else " AND actor = :actor"
        events = self._registry.query(
            "SELECT e.created_at, e.actor, e.kind, e.subject, e.detail FROM events e"
            " JOIN workspaces w ON w.id = e.workspace_id"
            f" WHERE w.name = :workspace{who} ORDER BY e.id DESC LIMIT :limit",
            {"workspace": workspace, "limit": limit, "actor": actor},
        )
        requests = self._registry.query(
            "SELECT created_at, actor, role, method, path, status, client FROM audit"
            f" WHERE workspace = :workspace{who} ORDER BY id DESC LIMIT :limit",
            {"workspace": workspace, "limit": limit, "actor": actor},
        )
        merged = [_event(row) for row in events] + [_request(row) for row in requests]
        merged.sort(key=lambda entry: entry["at"], reverse=True)
        return merged[:limit]


def _event(row: dict[str, Any]) -> dict[str, Any]:
    detail = json.loads(row["detail"] or "{}")
    return {
        "at": row["created_at"], "actor": row["actor"], "source": "event",
        "what": f"{row['kind']} {row['subject']}".strip(), "detail": detail,
    }  # fmt: skip


def _request(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "at": row["created_at"], "actor": row["actor"], "source": "http",
        "what": f"{row['method']} {row['path']} → {row['status']}",
        "detail": {"role": row["role"], "client": row["client"]},
    }  # fmt: skip
