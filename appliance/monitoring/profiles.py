"""Reference profiles: what a model version's training data looked like, as drift sees inputs.

A profile holds, per input feature, a sorted sample of the values measured on the version's
dataset images with the same `image_features` serving uses, plus the word frequencies of the
dataset's descriptions. It is computed when a version is registered from a run, and lazily for
any version that lacks one (hand-registered versions, or ones from before monitoring).
"""

from __future__ import annotations

import json
from typing import Any

from PIL import Image

from appliance.monitoring.drift import feature_profile, word_profile
from appliance.registry import utcnow
from appliance.services import Services
from appliance.tasks.images import image_features

MAX_IMAGES = 1000


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
    step = max(1, len(rows) // MAX_IMAGES)  # an even spread over the dataset, at most ~1000
    features = []
    for row in rows[::step]:
        with Image.open(folder / row["file_name"]) as image:
            features.append(image_features(image.convert("RGB")))
    return {
        "dataset": f"{dataset['name']}@{dataset['version']}",
        "images": len(features),
        "features": feature_profile(features),
        "words": word_profile(str(r.get("text", "")) for r in rows),
    }
