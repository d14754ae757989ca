"""`appliance demo`: the reference story, unattended and offline, told step by step.

For now: product photos are generated into the workspace `classified-ads`, added as a dataset
version, added again unchanged (the same version), then changed by a new category (a new
version, with its diff).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from appliance.datasets.imagefolder import METADATA
from appliance.services import Services

WORKSPACE = "classified-ads"
DATASET = "product-photos"


@dataclass(frozen=True)
class DemoOptions:
    count: int = 2000
    new_category_count: int = 200
    seed: int = 0
    low_light_fraction: float = 0.1


def run_demo(services: Services, options: DemoOptions, say: Callable[[str], None]) -> dict:
    from appliance.datasets.synthetic import generate

    services.workspaces.ensure(WORKSPACE)
    say(f"workspace {WORKSPACE} at {services.settings.home}")
    datasets = services.datasets
    with tempfile.TemporaryDirectory(dir=services.settings.home, prefix=".demo-") as scratch:
        photos = Path(scratch) / "photos"
        summary = generate(
            photos, count=options.count, seed=options.seed,
            low_light_fraction=options.low_light_fraction,
        )  # fmt: skip
        say(
            f"1. generated {summary.count} product photos ({summary.low_light} low-light) "
            f"in {len(summary.categories)} categories"
        )
        first = datasets.add(WORKSPACE, DATASET, photos)
        v1 = first.version
        verb = "added" if first.created else "found existing"
        say(f"2. {verb} dataset {DATASET}@{v1['version']} — id {v1['digest'][:12]}")

        again = datasets.add(WORKSPACE, DATASET, photos)
        same = again.version["digest"] == v1["digest"] and not again.created
        outcome = "the same version, nothing stored twice" if same else "a new version (unexpected)"
        say(f"3. added the same folder again → {outcome}")

        cars = Path(scratch) / "cars"
        generate(
            cars, count=options.new_category_count, seed=options.seed + 1,
            low_light_fraction=options.low_light_fraction, categories=["car"],
        )  # fmt: skip
        added = _append_imagefolder(photos, cars, prefix="car-")
        second = datasets.add(WORKSPACE, DATASET, photos)
        v2 = second.version
        say(
            f"4. a new category lands: {added} car photos → {DATASET}@{v2['version']} "
            f"— id {v2['digest'][:12]}"
        )
        diff = datasets.diff(WORKSPACE, f"{DATASET}@{v1['digest']}", f"{DATASET}@{v2['digest']}")
        say(
            f"5. diff @{v1['version']} → @{v2['version']}: {len(diff['added'])} added, "
            f"{len(diff['removed'])} removed, {len(diff['changed'])} changed "
            f"(metadata.jsonl updated)"
        )
    return {"workspace": WORKSPACE, "dataset": DATASET, "versions": [v1, v2], "diff": diff}


def _append_imagefolder(target: Path, extra: Path, prefix: str) -> int:
    """Copy `extra`'s images into `target` under new names and append their metadata rows."""
    rows = [json.loads(line) for line in (extra / METADATA).read_text().splitlines() if line]
    with (target / METADATA).open("a") as metadata:
        for row in rows:
            name = f"{prefix}{row['file_name']}"
            shutil.copyfile(extra / row["file_name"], target / name)
            metadata.write(json.dumps({**row, "file_name": name}) + "\n")
    return len(rows)
