"""Reference profiles: what a model version's training data looked like, as drift sees inputs.

A profile holds, per input feature of the version's task, a sorted sample of the values measured
on the version's dataset rows the same way serving measures a live input (`row_features`), plus
the word frequencies of the dataset's texts. It is computed when a version is registered from a
run, and lazily for any version that lacks one (hand-registered versions, or ones from before
monitoring).
"""

from __future__ import annotations

import json
from typing import Any

from appliance.models.lineage import task_of
from appliance.monitoring.drift import feature_profile, word_profile
from appliance.registry import utcnow
from appliance.services import Services
from appliance.tasks import DEFAULT_TASK, Task, get_task

MAX_ROWS = 1000


def ensure_profile(services: Services, version: dict[str, Any]) -> dict[str, Any] | None:
    """The version's profile, computed and stored on first use; None without dataset lineage."""
    rows = services.registry.query(
        "SELECT profile FROM reference_profiles WHERE model_version_id = ?", (version["id"],)
    )
    if rows:
        return dict(json.loads(rows[0]["profile"]))
    if not version.get("dataset_digest"):
        return None
    profile = build_profile(services, version)
    services.registry.write(
        lambda db: db.execute(
            "INSERT OR REPLACE INTO reference_profiles (model_version_id, profile, created_at)"
            " VALUES (?, ?, ?)",
            [version["id"], json.dumps(profile), utcnow()],
        ).close()
    )
    return profile


def build_profile(services: Services, version: dict[str, Any]) -> dict[str, Any]:
    dataset = services.datasets.by_digest(version["dataset_id"], version["dataset_digest"])
    folder = services.datasets.materialize(dataset)
    rows = services.datasets.rows(dataset)
    task = _task_of(services, version)
    step = max(1, len(rows) // MAX_ROWS)  # an even spread over the dataset, at most ~1000
    features = [task.row_features(folder, row) for row in rows[::step]]
    return {
        "dataset": f"{dataset['name']}@{dataset['version']}",
        "images": len(features),  # the rows measured (named when every task was photos)
        "features": feature_profile(features, features=task.features),
        "words": word_profile(str(r.get("text", "")) for r in rows),
    }


def _task_of(services: Services, version: dict[str, Any]) -> Task:
    """The task of the recipe that serves `version` (image-to-text for one that names none)."""
    if not version.get("recipe"):
        return get_task(DEFAULT_TASK)
    (workspace,) = services.registry.query(
        "SELECT w.name FROM models m JOIN workspaces w ON w.id = m.workspace_id WHERE m.id = ?",
        (version["model_id"],),
    )
    return get_task(task_of(services, workspace["name"], version))
