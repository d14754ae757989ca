"""What the registry-over-HTTP tests share: a folder as a tar in memory, hostile tars, and the
places an upload must leave empty."""

from __future__ import annotations

import io
import tarfile
import time
from pathlib import Path
from typing import Any

import httpx

TAR = {"content-type": "application/x-tar"}


def tar_of(folder: Path, prefix: str = "", compress: bool = False) -> bytes:
    """`folder`'s files as a tar (names under `prefix`, e.g. 'photos/'), gzipped if asked."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if compress else "w") as tar:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                tar.add(path, arcname=prefix + path.relative_to(folder).as_posix())
    return buffer.getvalue()


def tar_with(*members: tarfile.TarInfo, data: bytes = b"x") -> bytes:
    """A tar of the given members, each regular one holding `data`."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for member in members:
            if member.isreg():
                member.size = len(data)
                tar.addfile(member, io.BytesIO(data))
            else:
                tar.addfile(member)
    return buffer.getvalue()


def member(name: str, kind: bytes = tarfile.REGTYPE, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def leftovers(home: Path) -> list[Path]:
    """Upload scratch and unfinished stored files: none may stay after a request."""
    found = list((home / "tmp").glob("upload-*")) if (home / "tmp").is_dir() else []
    store_tmp = home / "artifacts" / "tmp"
    return found + (list(store_tmp.iterdir()) if store_tmp.is_dir() else [])


def stored_blobs(home: Path) -> list[Path]:
    root = home / "artifacts" / "sha256"
    return [p for p in root.rglob("*") if p.is_file()] if root.is_dir() else []


def refused(answer: httpx.Response, status: int, words: str) -> None:
    assert answer.status_code == status, answer.text
    assert words in answer.json()["error"], answer.json()


def wait_finished(client: httpx.Client, workspace: str, run_id: str, timeout: float = 90) -> Any:
    deadline = time.time() + timeout
    while True:
        run = client.get(f"/v1/workspaces/{workspace}/runs/{run_id}").json()
        if run["status"] in ("succeeded", "failed", "cancelled"):
            return run
        assert time.time() < deadline, f"run {run_id} still {run['status']}"
        time.sleep(0.2)
