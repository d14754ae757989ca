"""Capabilities coverage: for each workspace, which of the platform's capabilities its records
show it uses (ever, not only in a window: a capability set up once and still in place counts)."""

from __future__ import annotations

from typing import Any

from appliance.registry import Registry

# Each capability, with the query that counts a workspace's evidence of it (`:ws` its id).
CAPABILITIES: dict[str, tuple[str, str]] = {
    "dataset_versions": (
        "versioned datasets",
        "SELECT count(*) FROM dataset_versions v JOIN datasets d ON d.id = v.dataset_id"
        " WHERE d.workspace_id = :ws",
    ),
    "tracked_runs": ("tracked training runs", "SELECT count(*) FROM runs WHERE workspace_id = :ws"),
    "gate": (
        "an evaluation gate judged a promotion (promoted or refused on a metric)",
        "SELECT count(*) FROM events WHERE workspace_id = :ws"
        " AND kind IN ('promoted', 'promotion_refused')"
        " AND json_extract(detail, '$.candidate_value') IS NOT NULL",
    ),
    "quantized_deployment": (
        "a deployment quantized (fp16, bf16, int8 or nf4)",
        "SELECT count(*) FROM deployments WHERE workspace_id = :ws AND quantization != 'none'",
    ),
    "monitoring": (
        "captured predictions",
        "SELECT count(*) FROM predictions WHERE workspace_id = :ws",
    ),
    "feedback": (
        "end users rated predictions",
        "SELECT count(*) FROM feedback f JOIN predictions p ON p.id = f.prediction_id"
        " WHERE p.workspace_id = :ws",
    ),
    "retraining": (
        "scheduled or triggered retraining (a retrain, dataset watch or alert trigger job)",
        "SELECT count(*) FROM jobs WHERE workspace_id = :ws"
        " AND kind IN ('retrain', 'dataset_watch', 'alert_trigger')",
    ),
    "review_loop": (
        "answers queued for human review",
        "SELECT count(*) FROM review_items WHERE workspace_id = :ws",
    ),
}


def coverage(registry: Registry) -> dict[str, Any]:
    """{"capabilities": {name: meaning}, "matrix": {workspace: {capability: bool}},
    "used_by": {capability: count of workspaces}, "share": used capabilities / all, per
    workspace}."""
    workspaces = registry.query("SELECT id, name FROM workspaces ORDER BY name")
    matrix: dict[str, dict[str, bool]] = {}
    for ws in workspaces:
        matrix[ws["name"]] = {
            name: registry.db.execute(sql, {"ws": ws["id"]}).fetchone()[0] > 0
            for name, (_, sql) in CAPABILITIES.items()
        }
    return {
        "capabilities": {name: meaning for name, (meaning, _) in CAPABILITIES.items()},
        "matrix": matrix,
        "used_by": {name: sum(row[name] for row in matrix.values()) for name in CAPABILITIES},
        "share": {
            ws: round(sum(row.values()) / len(CAPABILITIES), 3) for ws, row in matrix.items()
        },
    }
