"""What keeps a model version from being deleted, read inside the deleting transaction.

A version in use is refused, whatever the flags, as a registry refuses to delete what it serves:
deployed at an endpoint, holding an alias (MLflow's `production` stage), or the base a queued or
running run fine-tunes. Two uses give way to `--force`, as they only lose a way back: the
version an endpoint's rollback returns to, and a retrain's run awaiting approval to deploy it.

What a delete leaves, by design: the version's calibration and drift reference go with its row
(ON DELETE CASCADE); the predictions it answered, their feedback and review items keep its id
for the monitoring history; a version fine-tuned from it keeps its id as its parent; its run
stays, with its metrics and logs.
"""

from __future__ import annotations

from typing import Any

import sqlite_utils


def blockers(db: sqlite_utils.Database, version: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(reasons that always refuse, reasons `force` overrides) for deleting `version`."""
    version_id = version["id"]
    hard = [
        f"it is deployed at endpoint '{endpoint}' (deploy another version there first)"
        for (endpoint,) in db.execute(
            "SELECT endpoint FROM deployments WHERE model_version_id = ? ORDER BY endpoint",
            [version_id],
        )
    ]
    hard += [
        f"it holds the alias '{alias}' (move it with `appliance model alias set`, or remove it "
        "with `appliance model alias unset`)"
        for (alias,) in db.execute(
            "SELECT alias FROM model_aliases WHERE version_id = ? ORDER BY alias", [version_id]
        )
    ]
    hard += [
        f"run {run_id} ({status}) fine-tunes it (wait for it, or `appliance run cancel {run_id}`)"
        for run_id, status in db.execute(
            "SELECT id, status FROM runs WHERE parent_model_version_id = ?"
            " AND status IN ('queued', 'running') ORDER BY created_at",
            [version_id],
        )
    ]
    soft = [
        f"endpoint '{endpoint}' rolls back to it"
        for endpoint, previous in db.execute(
            "SELECT d.endpoint, (SELECT json_extract(e.detail, '$.previous_version_id')"
            " FROM events e WHERE e.deployment_id = d.id AND e.model_version_id ="
            " d.model_version_id AND e.kind IN ('deployed', 'rolled_back')"
            " ORDER BY e.id DESC LIMIT 1) FROM deployments d ORDER BY d.endpoint"
        )
        if previous == version_id
    ]
    soft += [
        f"job run {job_run_id} awaits approval to deploy it"
        for (job_run_id,) in db.execute(
            "SELECT id FROM job_runs WHERE status = 'awaiting_approval'"
            " AND json_extract(detail, '$.version_id') = ? ORDER BY started_at",
            [version_id],
        )
    ]
    return hard, soft


def next_version(db: sqlite_utils.Database, workspace_id: str, model_id: str) -> int:
    """The next version number: never one a deleted version had (a number names one version
    for good, as in MLflow), found from the deletions' events."""
    (number,) = db.execute(
        "SELECT max(coalesce((SELECT max(version) FROM model_versions WHERE model_id = ?), 0),"
        " coalesce((SELECT max(json_extract(detail, '$.version')) FROM events"
        " WHERE workspace_id = ? AND kind = 'model_version_deleted'"
        " AND json_extract(detail, '$.model_id') = ?), 0))",
        [model_id, workspace_id, model_id],
    ).fetchone()
    return int(number) + 1
