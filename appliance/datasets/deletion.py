"""What keeps a dataset version from being deleted, read inside the deleting transaction.

A queued or running run that trains on it always refuses (it reads the version's files). Two
uses give way to `--force`: the model versions trained on it (their evaluation gate, calibration
and drift reference read it; after a forced delete they keep its digest as lineage, and
evaluating one needs `--dataset`), and a retrain job pinned to it (`--param dataset=NAME@N`; one
that names the dataset alone trains on its latest version). Finished runs keep its digest as
their history, and a later version keeps it as its parent.
"""

from __future__ import annotations

import json
from typing import Any

import sqlite_utils

_MIN_DIGEST_PREFIX = 6
"""As Datasets.get reads a ref: shorter runs of digits are version numbers."""


def blockers(
    db: sqlite_utils.Database, version: dict[str, Any], name: str
) -> tuple[list[str], list[str]]:
    """(reasons that always refuse, reasons `force` overrides) for deleting `version`."""
    key = [version["dataset_id"], version["digest"]]
    hard = [
        f"run {run_id} ({status}) trains on it (wait for it, or `appliance run cancel {run_id}`)"
        for run_id, status in db.execute(
            "SELECT id, status FROM runs WHERE dataset_id = ? AND dataset_digest = ?"
            " AND status IN ('queued', 'running') ORDER BY created_at",
            key,
        )
    ]
    trained = [
        f"{model}@{number}"
        for model, number in db.execute(
            "SELECT m.name, v.version FROM model_versions v JOIN models m ON m.id = v.model_id"
            " WHERE v.dataset_id = ? AND v.dataset_digest = ? ORDER BY m.name, v.version",
            key,
        )
    ]
    soft = [f"it is the training data of {', '.join(trained)}"] if trained else []
    for job, params in db.execute(
        "SELECT j.name, j.params FROM jobs j JOIN datasets d ON d.workspace_id = j.workspace_id"
        " WHERE d.id = ? AND j.kind = 'retrain' ORDER BY j.name",
        [version["dataset_id"]],
    ):
        pinned = str(json.loads(params).get("dataset", ""))
        if _names(pinned, name, version):
            soft.append(f"job '{job}' retrains on {pinned}")
    return hard, soft


def _names(ref: str, name: str, version: dict[str, Any]) -> bool:
    """Whether `ref` names exactly this version (a number, `vN` or a digest prefix)."""
    ref_name, _, version_ref = ref.partition("@")
    if ref_name != name or version_ref in ("", "latest"):
        return False
    number = version_ref[1:] if version_ref[:1] in "vV" else version_ref
    if number.isascii() and number.isdigit() and len(number) < _MIN_DIGEST_PREFIX:
        return int(number) == version["version"]
    return str(version["digest"]).startswith(version_ref.lower())


def next_version(db: sqlite_utils.Database, workspace_id: str, dataset_id: str) -> int:
    """The next version number, never one a deleted version had (see models/deletion.py)."""
    (number,) = db.execute(
        "SELECT max(coalesce((SELECT max(version) FROM dataset_versions WHERE dataset_id = ?),"
        " 0), coalesce((SELECT max(json_extract(detail, '$.version')) FROM events"
        " WHERE workspace_id = ? AND kind = 'dataset_version_deleted'"
        " AND json_extract(detail, '$.dataset_id') = ?), 0))",
        [dataset_id, workspace_id, dataset_id],
    ).fetchone()
    return int(number) + 1
