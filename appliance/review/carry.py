"""Reviewed rows outlive a watched folder's next version. A review export adds its rows to the
dataset's latest version (export.py), not to the folder a `dataset_watch` job versions; without
this, the watch's next version (the folder as it is) would drop every correction a person made.
So when the folder changes, its new version is the folder plus the latest version's reviewed
rows (those with `source_prediction`) that the folder does not hold, with their images."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from appliance.datasets.imagefolder import METADATA
from appliance.errors import NotFound
from appliance.registry import new_id
from appliance.review.export import SOURCE
from appliance.services import Services


@contextmanager
def with_reviewed_rows(
    services: Services, workspace: str, name: str, folder: Path
) -> Iterator[Path]:
    """`folder` itself when the dataset's latest version holds no reviewed row it lacks; else
    a staged copy of it (hard links) with those rows and their files added, removed after."""
    try:
        latest = services.datasets.get(workspace, name)
    except NotFound:  # no such dataset yet: the folder is its first version
        yield folder
        return
    metadata = folder / METADATA
    lines = metadata.read_text("utf-8").splitlines() if metadata.is_file() else []
    present = {str(json.loads(line).get(SOURCE)) for line in lines if line.strip()}
    carried = [
        row for row in services.datasets.rows(latest)
        if row.get(SOURCE) is not None and str(row[SOURCE]) not in present
    ]  # fmt: skip
    if not carried:
        yield folder
        return
    manifest = services.datasets.manifest(latest)
    staging = services.settings.home / "tmp" / f"watch-{new_id()}"
    try:
        shutil.copytree(folder, staging, copy_function=_link)
        for row in carried:
            relative = row.get("file_name")
            if relative and relative in manifest and not (staging / relative).exists():
                (staging / relative).parent.mkdir(parents=True, exist_ok=True)
                services.store.link_into(manifest[relative]["sha256"], staging / relative)
        text = "\n".join([*(line for line in lines if line.strip()),
                          *(json.dumps(row, ensure_ascii=False) for row in carried)])  # fmt: skip
        # A new file, not the hard link to the folder's own: the folder is never written.
        (staging / METADATA).unlink(missing_ok=True)
        (staging / METADATA).write_text(text + "\n", encoding="utf-8")
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _link(source: str, target: str) -> None:
    try:
        Path(target).hardlink_to(source)
    except OSError:
        shutil.copy2(source, target)
