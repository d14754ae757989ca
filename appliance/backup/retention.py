"""The scheduled `backup` job: one archive a run, named after the job and the UTC time
(`WORKSPACE+JOB-20250101T030000Z.tar`, `+` being a character no name may hold), in its `output`
folder (default `<home>/backups`), keeping the newest `keep` archives of this job (default 7).
Retention deletes only archives whose name is this job's pattern, never the one just made, and
never anything else in the folder; it also removes this job's `.partial` files, which only a
run that was killed leaves (one run of a job at a time: its lane)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from appliance.backup.create import create_backup
from appliance.backup.integrity import BACKUPS_FOLDER
from appliance.errors import InvalidInput

DEFAULT_KEEP = 7
PARAMS = ("output", "keep", "compress", "logs")
_STAMP = re.compile(r"(?P<stamp>\d{8}T\d{6}Z)(?:-(?P<n>\d+))?\.tar(?:\.gz)?(?P<partial>\.partial)?")


@dataclass(frozen=True)
class Plan:
    folder: Path
    keep: int
    compress: bool
    logs: bool


def check_params(params: dict[str, Any]) -> None:
    """Refuse parameters a backup job cannot use (at `job add`, not at its first run)."""
    unknown = sorted(set(params) - set(PARAMS))
    if unknown:
        raise InvalidInput(
            f"a backup job takes the parameters {', '.join(PARAMS)}; not {', '.join(unknown)}"
        )
    keep = params.get("keep", DEFAULT_KEEP)
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise InvalidInput(f"keep must be a whole number of archives, 1 or more; got {keep!r}")
    if "output" in params and (not isinstance(params["output"], str) or not params["output"]):
        raise InvalidInput("output must be the folder the archives go to")
    for flag in ("compress", "logs"):
        if not isinstance(params.get(flag, True), bool):
            raise InvalidInput(f"{flag} must be true or false")


def plan(home: Path, params: dict[str, Any]) -> Plan:
    """Where and how a job with `params` backs up `home`. A relative `output` is inside the
    home (the CLI and the server may run in different folders)."""
    check_params(params)
    output = Path(params["output"]).expanduser() if params.get("output") else None
    folder = home / BACKUPS_FOLDER if output is None else home / output
    return Plan(
        folder, int(params.get("keep", DEFAULT_KEEP)), bool(params.get("compress", False)),
        bool(params.get("logs", True)),
    )  # fmt: skip


def prefix(workspace: str, job: str) -> str:
    return f"{workspace}+{job}-"


def scheduled_backup(
    home: Path, workspace: str, job: str, params: dict[str, Any], timeout_ms: int = 15_000
) -> dict[str, Any]:
    """Run one backup of `home` for job `job` of `workspace`, then apply its retention; returns
    the job run's detail: the archive, its size, and what retention removed."""
    chosen = plan(home, params)
    if chosen.folder == home / BACKUPS_FOLDER:
        chosen.folder.mkdir(parents=True, exist_ok=True)
    elif not chosen.folder.is_dir():
        raise InvalidInput(
            f"the backup folder {chosen.folder} does not exist (is its disk mounted?)"
        )
    name = _free_name(
        chosen.folder, prefix(workspace, job), ".tar.gz" if chosen.compress else ".tar"
    )
    result = create_backup(home, chosen.folder / name, logs=chosen.logs, timeout_ms=timeout_ms)
    removed, kept = prune(chosen.folder, prefix(workspace, job), chosen.keep, result.path)
    return {
        "archive": str(result.path), "size": result.size, "files": result.files,
        "seconds": result.seconds, "kept": kept, "removed": len(removed),
        "removed_archives": [p.name for p in removed],
    }  # fmt: skip


def prune(folder: Path, start: str, keep: int, made: Path) -> tuple[list[Path], int]:
    """Delete this job's archives beyond the newest `keep` (counting `made`, which stays
    whatever its time) and its leftover partial files. Returns what went and how many stay."""
    archives: list[tuple[str, int, Path]] = []
    removed: list[Path] = []
    for path in folder.iterdir():
        if not path.name.startswith(start) or path == made or not path.is_file():
            continue
        match = _STAMP.fullmatch(path.name[len(start) :])
        if match is None:
            continue  # not this job's: another job whose name begins like this one's, or a file
        if match["partial"]:
            path.unlink(missing_ok=True)
            removed.append(path)
            continue
        archives.append((match["stamp"], int(match["n"] or 1), path))
    archives.sort(reverse=True)
    for _, _, path in archives[keep - 1 :]:
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed, min(len(archives), keep - 1) + 1


def _free_name(folder: Path, start: str, suffix: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    name, n = f"{start}{stamp}{suffix}", 1
    while (folder / name).exists() or (folder / f"{name}.partial").exists():
        n += 1
        name = f"{start}{stamp}-{n}{suffix}"
    return name
