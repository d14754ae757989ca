"""Adoption: the workspaces (teams) that have a model in production and used the platform in
the window, of all workspaces. In production: an active deployment serving the version its
model's `production` alias points to. Used: predictions answered, runs started or events
recorded (deploys, promotions, jobs, alerts) in the window."""

from __future__ import annotations

from typing import Any

from appliance.registry import Registry

PRODUCTION = "production"

_PRODUCTION_ENDPOINTS = (
    "SELECT d.endpoint FROM deployments d"
    " JOIN model_versions v ON v.id = d.model_version_id"
    " JOIN model_aliases a ON a.model_id = v.model_id AND a.alias = :alias"
    "  AND a.version_id = d.model_version_id"
    " WHERE d.workspace_id = :ws AND d.status = 'active' ORDER BY d.endpoint"
)
_ACTIVITY = {
    "predictions": "SELECT count(*) FROM predictions WHERE workspace_id = :ws"
    " AND created_at >= :since AND created_at < :until",
    "runs": "SELECT count(*) FROM runs WHERE workspace_id = :ws"
    " AND created_at >= :since AND created_at < :until",
    "events": "SELECT count(*) FROM events WHERE workspace_id = :ws"
    " AND created_at >= :since AND created_at < :until",
}


def adoption(registry: Registry, since: str, until: str) -> dict[str, Any]:
    """Per workspace its production endpoints and activity counts in [since, until), and the
    adopted ones (both) of all."""
    rows = []
    for ws in registry.query("SELECT id, name FROM workspaces ORDER BY name"):
        args = {"ws": ws["id"], "alias": PRODUCTION, "since": since, "until": until}
        endpoints = [r[0] for r in registry.db.execute(_PRODUCTION_ENDPOINTS, args).fetchall()]
        activity = {k: registry.db.execute(sql, args).fetchone()[0] for k, sql in _ACTIVITY.items()}
        rows.append(
            {
                "workspace": ws["name"],
                "production_endpoints": endpoints,
                **activity,
                "adopted": bool(endpoints) and any(activity.values()),
            }
        )
    adopted = [r["workspace"] for r in rows if r["adopted"]]
    return {
        "adopted": len(adopted),
        "workspaces": len(rows),
        "rate": round(len(adopted) / len(rows), 3) if rows else None,
        "adopted_workspaces": adopted,
        "meaning": "a workspace is adopted when an active deployment serves its model's "
        "production version and it answered predictions, started runs or recorded events in "
        "the window",
        "per_workspace": rows,
    }
