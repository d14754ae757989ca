"""Restoring a backup into a new home. Nothing is moved into place until all of it checks out:
the archive is unpacked into a folder beside HOME (same filesystem), every file is hashed as it
is written and compared with the manifest (and every blob with its name, every model folder with
its version's digest in the restored registry), the registry passes `PRAGMA integrity_check`,
and only then is that folder renamed to HOME in one step. A failure at any point leaves HOME as
it was (absent or empty) and removes the unpacked folder.

The registry records run logs by absolute path; those under the old home are moved to the new
one. The restored home gets its own id (home-id) on first use: it is another home.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import sqlite3
import tarfile
import time
import zlib
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

from appliance.artifacts.folders import FolderFile, fsync_dir
from appliance.backup.archive import FORMAT, HEADER, KIND, MANIFEST
from appliance.backup.create import COUNTED, REGISTRY
from appliance.backup.integrity import problems
from appliance.backup.references import SHA256, ModelFolder, blob_name, find_references
from appliance.backup.verify import folder_problem
from appliance.errors import Conflict, InvalidInput, NotFound
from appliance.registry.database import new_id
from appliance.settings import CONFIG_FILE

_CHUNK = 1 << 20
_MAX_JSON = 1 << 30
_TOPS = ("artifacts", "models", "review", "logs")
_READ_ONLY = ("artifacts", "models")  # write-once files, kept read-only as the home keeps them


class RestoreRefused(InvalidInput):
    """The archive is not a complete, matching backup: nothing was restored."""


@dataclass
class Restored:
    home: Path
    source: Path
    created_at: str
    appliance_version: str
    from_home: str
    files: int
    bytes: int
    counts: dict[str, int]
    seconds: float
    logs_moved: int = 0
    recipes_outside: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {**vars(self), "home": str(self.home), "source": str(self.source)}


def restore_backup(source: Path, home: Path) -> Restored:
    """Restore the backup archive `source` into `home`, which must not exist or be empty."""
    started = time.perf_counter()
    source, home = source.absolute(), home.absolute()
    if not source.is_file():
        raise NotFound(f"there is no backup archive at {source}")
    _check_target(home)
    home.parent.mkdir(parents=True, exist_ok=True)
    staging = home.parent / f".{home.name}.restoring-{new_id()}"
    staging.mkdir()
    try:
        manifest, written = _unpack(source, staging)
        _check_manifest(manifest, written)
        registry = staging / REGISTRY
        found = problems(registry, full=True)
        if found:
            raise RestoreRefused(
                f"the registry in {source} fails integrity_check ({found[0]}); nothing was "
                "restored: use another backup"
            )
        counts, moved = _settle(registry, staging, manifest, written, home)
        _fsync_tree(staging)
        try:
            os.rename(staging, home)  # replaces HOME when it is an empty folder
        except OSError as exc:
            raise Conflict(f"{home} could not be put in place ({exc.strerror}): was it "
                           "filled meanwhile?") from None  # fmt: skip
        fsync_dir(home.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Restored(
        home=home, source=source, created_at=manifest["created_at"],
        appliance_version=manifest.get("appliance_version", "?"),
        from_home=manifest.get("home", "?"), files=len(written),
        bytes=sum(size for _, size in written.values()), counts=counts,
        seconds=round(time.perf_counter() - started, 3), logs_moved=moved,
        recipes_outside=list(manifest.get("recipes_outside_home", [])),
    )  # fmt: skip


def _check_target(home: Path) -> None:
    if not home.exists():
        return
    if not home.is_dir():
        raise Conflict(f"{home} is a file; restore into a new folder")
    entries = sorted(p.name for p in home.iterdir())
    if entries:
        shown = ", ".join(entries[:3]) + (", …" if len(entries) > 3 else "")
        raise Conflict(
            f"{home} is not empty ({len(entries)} entr{'ies' if len(entries) != 1 else 'y'}: "
            f"{shown}); restore into a new folder (it is created), or move this one aside first"
        )


def _unpack(source: Path, staging: Path) -> tuple[dict[str, Any], dict[str, tuple[str, int]]]:
    """Write every file of the archive under `staging`, hashing each; returns the manifest and
    {path: (sha256, size)} of what was written."""
    written: dict[str, tuple[str, int]] = {}
    manifest: dict[str, Any] | None = None
    try:
        with tarfile.open(source, mode="r|*") as tar:
            for index, member in enumerate(tar):
                if index == 0:
                    _check_header(source, member, tar.extractfile(member))
                    continue
                if manifest is not None:
                    raise RestoreRefused(f"{source}: '{member.name}' follows the manifest")
                if member.name == MANIFEST and member.isreg():
                    manifest = _json(source, member, tar.extractfile(member))
                    continue
                name = _safe_name(source, member)
                if name in written:
                    raise RestoreRefused(f"{source} holds '{name}' twice")
                handle = tar.extractfile(member)
                assert handle is not None  # a regular file
                written[name] = _write(handle, staging / name, name.startswith(_READ_ONLY))
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise RestoreRefused(
            f"{source} is not a complete backup archive ({type(exc).__name__}: {exc}); nothing "
            "was restored"
        ) from None
    if manifest is None:
        raise RestoreRefused(
            f"{source} has no manifest: the archive was cut short (a copy that did not finish?); "
            "nothing was restored"
        )
    return manifest, written


def _check_header(source: Path, member: tarfile.TarInfo, handle: IO[bytes] | None) -> None:
    header = _json(source, member, handle) if member.name == HEADER and member.isreg() else {}
    if header.get("kind") != KIND:
        raise RestoreRefused(
            f"{source} is not an appliance backup (it does not start with {HEADER})"
        )
    if not isinstance(header.get("format"), int) or header["format"] > FORMAT:
        raise RestoreRefused(
            f"{source} is a backup of format {header.get('format')}, from appliance "
            f"{header.get('appliance_version', '?')}; this appliance reads format {FORMAT}: "
            "restore it with that version or a newer one"
        )


def _json(source: Path, member: tarfile.TarInfo, handle: IO[bytes] | None) -> dict[str, Any]:
    if handle is None or member.size > _MAX_JSON:
        raise RestoreRefused(f"{source}: {member.name} is not a file of a backup")
    try:
        data = json.loads(handle.read())
    except ValueError as exc:
        raise RestoreRefused(f"{source}: {member.name} cannot be read ({exc})") from None
    if not isinstance(data, dict):
        raise RestoreRefused(f"{source}: {member.name} is not a JSON object")
    return data


def _safe_name(source: Path, member: tarfile.TarInfo) -> str:
    """The member's path, when it is a regular file at a plain relative path where a home
    keeps its files; anything else (a link, a device, '..', an absolute path) refuses."""
    name = member.name
    parts = PurePosixPath(name).parts
    plain = (
        bool(parts) and not name.startswith("/") and "\\" not in name
        and all(p not in ("", ".", "..") for p in parts)
        and PurePosixPath(*parts).as_posix() == name
    )  # fmt: skip
    where = name in (REGISTRY, CONFIG_FILE) or (len(parts) >= 2 and parts[0] in _TOPS)
    if parts[:1] == ("artifacts",):  # only blobs: artifacts/sha256/xx/<sha256>
        where = SHA256.fullmatch(parts[-1]) is not None and name == blob_name(parts[-1])
    if not (plain and where and member.isreg()):
        raise RestoreRefused(
            f"{source} holds '{name}', which is not a file a backup writes; nothing was restored"
        )
    return name


def _write(handle: IO[bytes], target: Path, read_only: bool) -> tuple[str, int]:
    target.parent.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    with target.open("xb") as out:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
        out.flush()
        os.fsync(out.fileno())
    target.chmod(0o444 if read_only else 0o644)
    return digest.hexdigest(), size


def _check_manifest(manifest: dict[str, Any], written: dict[str, tuple[str, int]]) -> None:
    """Every file the manifest lists was written with its digest and size, and nothing else;
    every blob hashes to its name."""
    try:
        listed = {str(f["path"]): (str(f["sha256"]), int(f["size"])) for f in manifest["files"]}
        str(manifest["created_at"])
    except (KeyError, TypeError, ValueError) as exc:
        raise RestoreRefused(f"the manifest cannot be read ({exc}); nothing was restored") from None
    wrong = []
    for name, expected in sorted(listed.items()):
        got = written.get(name)
        if got is None:
            wrong.append(f"{name} is missing")
        elif got != expected:
            wrong.append(
                f"{name} does not match the manifest (sha256 {got[0][:12]}, {got[1]:,} bytes;"
                f" listed {expected[0][:12]}, {expected[1]:,} bytes)"
            )
        elif name.startswith("artifacts/") and name != blob_name(got[0]):
            wrong.append(f"{name} does not hash to its name (its bytes hash to {got[0][:12]})")
    wrong += [f"{name} is not in the manifest" for name in sorted(set(written) - set(listed))]
    if REGISTRY not in written:
        wrong.append(f"{REGISTRY} is missing")
    if wrong:
        more = f"; and {len(wrong) - 3} more" if len(wrong) > 3 else ""
        raise RestoreRefused(
            f"the archive does not match its manifest: {'; '.join(wrong[:3])}{more}; nothing "
            "was restored"
        )


def _settle(
    registry: Path,
    staging: Path,
    manifest: dict[str, Any],
    written: dict[str, tuple[str, int]],
    home: Path,
) -> tuple[dict[str, int], int]:
    """Check the model folders against the restored registry, move run logs to the new home,
    and count what the registry holds."""
    db = sqlite3.connect(registry, isolation_level=None)
    with closing(db):
        refs = find_references(db, staging)
        wrong = [p for m in refs.models if (p := _model_problem(m, written)) is not None]
        if wrong:
            raise RestoreRefused(f"{wrong[0]}; nothing was restored")
        # Run logs are recorded by absolute path: the restored ones are in the new home now,
        # and the others (left out, or never written) point where they would be.
        old = str(manifest.get("home") or "")
        if old and old != str(home):
            db.execute(
                "UPDATE runs SET log_path = :new || substr(log_path, :n + 1)"
                " WHERE substr(log_path, 1, :n) = :old",
                {"new": f"{home}/", "old": f"{old}/", "n": len(old) + 1},
            )
        moved = 0
        for log in refs.logs:
            if log.path in written:
                moved += db.execute(
                    "UPDATE runs SET log_path = ? WHERE id = ?", [str(home / log.path), log.run_id]
                ).rowcount
        counts = {t: int(db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in COUNTED}
    return counts, moved


def _model_problem(model: ModelFolder, written: dict[str, tuple[str, int]]) -> str | None:
    """What is wrong with a restored version folder, from the digests taken as it was written."""
    prefix = f"{model.path}/"
    files = [
        FolderFile(name[len(prefix):], sha256, size)
        for name, (sha256, size) in written.items() if name.startswith(prefix)
    ]  # fmt: skip
    if not files:
        return f"{model.path} (model version {model.ref}) is not in the archive"
    # The digest lists the files in the order stage_folder read them: sorted paths.
    files.sort(key=lambda f: PurePosixPath(f.path).parts)
    return folder_problem(model, files)


def _fsync_tree(root: Path) -> None:
    for folder, _, _ in os.walk(root):
        fsync_dir(Path(folder))
