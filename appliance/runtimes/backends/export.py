"""The export cache: a version's graphs for one backend and quantization, under the home at
`exports/<version id>/<backend>-<quantization>/`, written into a temporary folder beside it and
renamed into place when complete (write-once, as model folders are). A folder there is whole;
a crash leaves only a `.tmp-*` folder, which is never read. Two processes exporting the same
version at once (instance workers) each write their own and the first rename wins."""

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
    if target.exists():  # a folder without its marker: not ours to trust
        shutil.rmtree(target)
    work = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=target.parent))
    try:
        build(work)
        (work / COMPLETE).write_text("")
        try:
            os.replace(work, target)
        except OSError:  # another process (an instance worker) finished the same export first
            if not (target / COMPLETE).is_file():
                raise
            shutil.rmtree(work, ignore_errors=True)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    log.info("exported: %s", target)
    return target
