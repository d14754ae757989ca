"""The export cache: a version's graphs for one backend and quantization, under the home at
`exports/<version id>/<backend>-<quantization>/`, written into a temporary folder beside it and
renamed into place when complete (write-once, as model folders are). A folder there is whole;
a crash leaves only a `.tmp-*` folder, which is never read and is cleared on the next export."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("appliance.serving")

COMPLETE = "complete"
"""Written last inside the temporary folder: a folder without it is not an export."""


def export_dir(home: Path, version_id: str, backend: str, quantization: str) -> Path:
    return home / "exports" / version_id / f"{backend}-{quantization}"


def cached(target: Path, build: Callable[[Path], None]) -> Path:
    """`target`, built by `build(folder)` into a fresh folder first if it is not there yet."""
    if (target / COMPLETE).is_file():
        log.info("export reused: %s", target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".tmp-{target.name}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    if target.exists():  # a folder without its marker: not ours to trust
        shutil.rmtree(target)
    work = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=target.parent))
    try:
        build(work)
        (work / COMPLETE).write_text("")
        os.replace(work, target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    log.info("exported: %s", target)
    return target
