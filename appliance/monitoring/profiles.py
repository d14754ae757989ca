"""Reference profiles: what a model version's training data looked like, as drift sees inputs.

A profile holds, per input feature of the version's task, a sorted sample of the values measured
on the version's dataset rows the same way serving measures a live input (`row_features`), plus
the word frequencies of the dataset's texts and its vocabulary: the commonest words of the rows'
watched text (the task's `words`), which live inputs' `oov_rate` and `new_words` are measured
against (their reference values are the rows' own, each against the other folds' vocabulary:
`drift.held_out_word_features`). It is computed when a version is registered from a run, and
lazily for any version that lacks one (hand-registered versions, or ones from before monitoring;
one from before vocabularies is rebuilt once its dataset is still there).
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from appliance.errors import ApplianceError
from appliance.models.lineage import task_of
from appliance.monitoring.drift import (
    WORD_FEATURES,
    feature_profile,
    held_out_word_features,
    vocabulary,
    word_profile,
)  # fmt: skip
from appliance.registry import utcnow
from appliance.services import Services
from appliance.tasks import DEFAULT_TASK, Task, get_task

log = logging.getLogger("appliance.monitoring")

MAX_ROWS = 1000


def ensure_profile(services: Services, version: dict[str, Any]) -> dict[str, Any] | None:
    """The version's profile, computed and stored on first use; None without dataset lineage."""
    rows = services.registry.query(
        "SELECT profile FROM reference_profiles WHERE model_version_id = ?", (version["id"],)
    )
    stored = dict(json.loads(rows[0]["profile"])) if rows else None
    if stored is not None and "vocabulary" in stored:
        return stored
    if not version.get("dataset_digest"):
        return stored
    try:
        profile = build_profile(services, version)
    except (ApplianceError, OSError):
        if stored is None:
            raise
        return stored  # a profile from before vocabularies whose dataset is gone: keep it
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
    watched = [task.words(row) for row in rows]
    known = vocabulary(watched)
    names = task.features
    if known:  # the rows have words: each measured row gets its words' features too
        names = (*names, *WORD_FEATURES)
        held_out = held_out_word_features(watched)[::step]
        features = [{**f, **w} for f, w in zip(features, held_out, strict=True)]
    return {
        "dataset": f"{dataset['name']}@{dataset['version']}",
        "images": len(features),  # the rows measured (named when every task was photos)
        "features": feature_profile(features, features=names),
        "words": word_profile(str(r.get("text", "")) for r in rows),
        "vocabulary": known,
    }


def vocabulary_of(profile: dict[str, Any] | None) -> frozenset[str]:
    """The training words a profile keeps (none for a profile from before vocabularies)."""
    return frozenset(profile.get("vocabulary") or ()) if profile else frozenset()


class Vocabularies:
    """Each model version's training vocabulary, for the capture thread (`get`): read from the
    version's stored profile once, then kept. A version whose profile is not stored yet has it
    built on a thread of its own, once, so that capture never waits on a dataset; its
    predictions meanwhile go without word features."""

    def __init__(self, services: Services):
        self._services = services
        self._known: dict[str, frozenset[str]] = {}
        self._lock = threading.Lock()
        self._building: dict[str, threading.Thread] = {}

    def get(self, version_id: str) -> frozenset[str]:
        """The version's vocabulary; empty while it is being built, and for good when its data
        has no words, the version has no dataset lineage, or its profile cannot be built."""
        with self._lock:
            known = self._known.get(version_id)
            if known is not None or version_id in self._building:
                return known or frozenset()
        try:
            rows = self._services.registry.query(
                "SELECT profile FROM reference_profiles WHERE model_version_id = ?", (version_id,)
            )
            profile = json.loads(rows[0]["profile"]) if rows else None
        except Exception:  # never a reason to lose the captures themselves
            log.exception("could not read the reference profile of version %s", version_id)
            profile = None
        if profile is not None and "vocabulary" in profile:
            return self._keep(version_id, vocabulary_of(profile))
        thread = threading.Thread(
            target=self._build, args=(version_id,), name="vocabulary", daemon=True
        )
        with self._lock:
            self._building[version_id] = thread
        thread.start()
        return frozenset()

    def wait(self, timeout: float | None = None) -> None:
        """Block until the vocabularies being built are known (or `timeout` passes)."""
        with self._lock:
            threads = list(self._building.values())
        for thread in threads:
            thread.join(timeout)

    def _keep(self, version_id: str, words: frozenset[str]) -> frozenset[str]:
        with self._lock:
            self._known[version_id] = words
            self._building.pop(version_id, None)
        return words

    def _build(self, version_id: str) -> None:
        words: frozenset[str] = frozenset()
        try:
            rows = self._services.registry.query(
                "SELECT * FROM model_versions WHERE id = ?", (version_id,)
            )
            if rows:
                words = vocabulary_of(ensure_profile(self._services, rows[0]))
        except Exception:
            log.exception("no vocabulary for version %s: its captures go without word features",
                          version_id)  # fmt: skip
        self._keep(version_id, words)


def _task_of(services: Services, version: dict[str, Any]) -> Task:
    """The task of the recipe that serves `version` (image-to-text for one that names none)."""
    if not version.get("recipe"):
        return get_task(DEFAULT_TASK)
    (workspace,) = services.registry.query(
        "SELECT w.name FROM models m JOIN workspaces w ON w.id = m.workspace_id WHERE m.id = ?",
        (version["model_id"],),
    )
    return get_task(task_of(services, workspace["name"], version))
