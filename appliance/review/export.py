"""Reviewed answers become a new dataset version: the latest version's files, plus one row per
accepted or corrected item not yet exported (an imagefolder row naming `review/<id>.png`, or a
text row), each with `source_prediction`, the prediction it came from. The version is added
like any other (`Datasets.add` over a folder staged under the home, then removed), so a retrain
job that names the dataset trains on it next. An item whose prediction is already a row of the
latest version is not added twice."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from PIL import Image

from appliance.datasets.imagefolder import METADATA
from appliance.errors import InvalidInput, NotFound
from appliance.names import split_ref
from appliance.registry import new_id
from appliance.review.store import FOLDER, Reviews
from appliance.services import Services

SOURCE = "source_prediction"


def export(
    services: Services, workspace: str, endpoint: str, dataset: str | None = None
) -> dict[str, Any]:
    """Add the reviewed items of `endpoint` to `dataset` (default: the one the deployed
    version was trained on) as its next version. Returns what was done: `exported` rows, the
    new `version` (None when there was nothing to export), and the items `skipped`."""
    reviews = Reviews(services)
    ws = services.workspaces.get(workspace)
    items = services.registry.query(
        "SELECT * FROM review_items WHERE workspace_id = ? AND endpoint = ?"
        " AND status IN ('accepted', 'corrected') AND exported_to IS NULL ORDER BY created_at",
        (ws["id"], endpoint),
    )
    if dataset is not None and split_ref(dataset)[1] is not None:
        raise InvalidInput(
            f"give the dataset's name, not a version ('{dataset}'): the new version adds to "
            "its latest"
        )
    if not items:
        return _answer(dataset or "", None, [], [], "nothing to export: no reviewed item awaits")
    name = dataset or _trained_on(services, ws["id"], endpoint, items)
    latest = _latest(services, workspace, name)
    manifest = services.datasets.manifest(latest) if latest else {}
    rows = services.datasets.rows(latest) if latest else []
    text_rows = bool(latest) and manifest.keys() == {METADATA}
    kinds = {item["kind"] for item in items}
    if latest and kinds != {"text" if text_rows else "image"}:
        have = "text rows" if text_rows else "images"
        raise InvalidInput(
            f"dataset '{name}' holds {have}; the reviewed items of '{endpoint}' are "
            f"{' and '.join(sorted(kinds))}s: export them to a dataset of their kind"
        )
    if len(kinds) > 1:
        raise InvalidInput(f"the reviewed items of '{endpoint}' mix images and texts")
    known = {str(r[SOURCE]) for r in rows if SOURCE in r}
    fresh = [i for i in items if i["prediction_id"] not in known]
    already = [i["id"] for i in items if i["prediction_id"] in known]
    staging = reviews.folder / f".export-{new_id()}"
    try:
        added, skipped = _stage(services, reviews, staging, manifest, latest, fresh)
        if not added:
            if already:
                reviews.mark_exported(already, _ref(latest))
            why = f"already rows of {_ref(latest)}" if already else "their inputs are gone"
            return _answer(name, None, [], skipped, f"nothing new to export: {why}")
        result = services.datasets.add(workspace, name, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    ref = f"{name}@{result.version['version']}"
    reviews.mark_exported([i["id"] for i in added] + already, ref)
    return _answer(name, result.version, [i["id"] for i in added], skipped, f"exported to {ref}")


def _stage(
    services: Services,
    reviews: Reviews,
    staging: Path,
    manifest: dict[str, dict[str, Any]],
    latest: dict[str, Any] | None,
    items: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[str]]:
    """Lay out the latest version plus the items' rows and images in `staging`; returns the
    items added and the ids of those whose input is gone."""
    store = services.store
    staging.mkdir(parents=True)
    for relative, entry in manifest.items():
        if relative != METADATA:
            store.link_into(entry["sha256"], staging / relative)
    lines = []
    if latest is not None:
        lines = store.read_bytes(manifest[METADATA]["sha256"]).decode().splitlines()
    added, skipped = [], []
    for item in items:
        row = _row(item)
        if row is None:
            skipped.append(item["id"])
            continue
        if item["kind"] == "image":
            source = reviews.input_path(item)
            if source is None or not _readable(source):
                skipped.append(item["id"])
                continue
            row["file_name"] = f"{FOLDER}/{item['id']}.png"
            (staging / FOLDER).mkdir(exist_ok=True)
            shutil.copyfile(source, staging / row["file_name"])
        lines.append(json.dumps(row, ensure_ascii=False))
        added.append(item)
    content = "\n".join(line for line in lines if line.strip()) + "\n"
    (staging / METADATA).write_text(content, encoding="utf-8")
    return added, skipped


def _readable(path: Path) -> bool:
    """Whether the kept PNG decodes: one an OS crash left empty would fail the whole add."""
    try:
        with Image.open(path) as image:
            image.load()
    except (OSError, SyntaxError, ValueError):
        return False
    return True


def _row(item: dict[str, Any]) -> dict[str, Any] | None:
    """The dataset row of one reviewed item: its right answer under the task's name for it
    (`text` for a description, `label`), its other input fields, its prediction; None when
    there is no answer to give (an accepted empty one) or no text (a text item's is gone)."""
    fields = json.loads(item["fields"] or "{}")
    right = item["correction"] if item["status"] == "corrected" else item["answer"]
    if not right or (item["kind"] == "text" and not item["input_text"]):
        return None
    row: dict[str, Any]
    if item["kind"] == "text":
        row = {"text": item["input_text"], "label": right}
    elif item["answer_field"] == "label":
        row = {"text": "", "label": right}  # an imagefolder row always has a text
    else:
        row = {"text": right}
    return {
        **row,
        **{k: v for k, v in fields.items() if k not in row},
        SOURCE: item["prediction_id"],
    }


def _trained_on(
    services: Services, workspace_id: str, endpoint: str, items: list[dict[str, Any]]
) -> str:
    """The dataset of the version deployed at `endpoint`, else of the newest item's version."""
    found = services.registry.query(
        "SELECT d.name FROM deployments dep JOIN model_versions v ON v.id = dep.model_version_id"
        " JOIN datasets d ON d.id = v.dataset_id"
        " WHERE dep.workspace_id = ? AND dep.endpoint = ?",
        (workspace_id, endpoint),
    )
    for item in reversed(items):
        if found:
            break
        found = services.registry.query(
            "SELECT d.name FROM model_versions v JOIN datasets d ON d.id = v.dataset_id"
            " WHERE v.id = ?",
            (item["model_version_id"],),
        )
    if not found:
        raise InvalidInput(
            f"the model at '{endpoint}' has no dataset lineage: name the dataset to export to"
        )
    return str(found[0]["name"])


def _latest(services: Services, workspace: str, name: str) -> dict[str, Any] | None:
    try:
        return services.datasets.get(workspace, name)
    except NotFound:  # a new dataset: the reviewed rows are its first version
        return None


def _ref(version: dict[str, Any] | None) -> str:
    return f"{version['name']}@{version['version']}" if version else ""


def _answer(
    name: str,
    version: dict[str, Any] | None,
    exported: list[str],
    skipped: list[str],
    message: str,
) -> dict[str, Any]:
    return {
        "dataset": name,
        "version": version["version"] if version else None,
        "digest": version["digest"] if version else None,
        "exported": exported,
        "skipped": skipped,
        "message": message,
    }
