"""SIGKILL in the middle of registering a model version or importing a dataset: afterwards there
is either a complete version or none at all, the registry is sound, and trying again works.

A child process does the write; it is killed either after a delay (wherever it happens to be)
or at a named step, by wrapping the step so that the process kills itself right after it."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from crash_harness import REPO, integrity
from safetensors.numpy import save_file

from appliance.artifacts.folders import STALE_STAGING_SECONDS, FolderFile, StagedFolder
from appliance.datasets.synthetic import generate
from appliance.services import Services

WEIGHTS = 12_500_000  # float32: a 50 MB safetensors file

# argv: home, folder, what ("model" or "dataset"), crash step ("" for none). Prints "ready"
# once the home is open, so a delay counts from the start of the write, not from imports.
CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path

    import appliance.artifacts.folders as folders
    import appliance.models.service as models
    from appliance.artifacts.store import ArtifactStore
    from appliance.services import Services

    home, folder, what, crash = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]

    def then_die(step, after=1):
        calls = []
        def wrapped(*args, **kwargs):
            result = step(*args, **kwargs)
            calls.append(1)
            if len(calls) >= after:
                os.kill(os.getpid(), signal.SIGKILL)
            return result
        return wrapped

    if crash == "first-file-copied":
        folders._copy_hashed = then_die(folders._copy_hashed)
    elif crash == "staged":
        models.stage_folder = then_die(models.stage_folder)
    elif crash == "published":
        models.publish_folder = then_die(models.publish_folder)
    elif crash == "some-files-stored":
        ArtifactStore.put_file = then_die(ArtifactStore.put_file, after=50)
    elif crash == "manifest-stored":
        ArtifactStore.put_bytes = then_die(ArtifactStore.put_bytes)

    with Services.open(home=home) as services:
        services.workspaces.get("ws")
        print("ready", flush=True)
        if what == "model":
            services.models.register("ws", "big", folder)
        else:
            services.datasets.add("ws", "many", folder)
    print("done", flush=True)
    """
)


def write_in_child(home: Path, folder: Path, what: str, *, crash: str = "", delay: float | None = None) -> int:  # fmt: skip
    """Run the write in a child; SIGKILL it `delay` seconds after it is ready (if given).
    Returns the child's exit status."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(home), str(folder), what, crash],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready", "the child did not start"
        if delay is not None:
            time.sleep(delay)
            os.kill(child.pid, signal.SIGKILL)
        return child.wait(60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(60)


@pytest.fixture(scope="module")
def big_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("big-model")
    weights = np.random.default_rng(0).random(WEIGHTS, dtype=np.float32)
    save_file({"weight": weights}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"model_type": "test"}))
    return folder


@pytest.fixture(scope="module")
def many_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("many") / "images", count=300, seed=11).path


def folder_digest(folder: Path) -> str:
    """The digest register records, computed from what is on disk now."""
    files = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        rel = path.relative_to(folder).as_posix()
        files.append(FolderFile(rel, hashlib.sha256(data).hexdigest(), len(data)))
    return StagedFolder(folder, tuple(files)).digest


def check_models(home: Path) -> tuple[list[dict], set[Path]]:
    """Every version row has its complete folder. Returns the rows, and the folders outside
    .staging that have no row (a crash between the rename and the row leaves one)."""
    assert integrity(home / "registry.db") == "ok"
    with Services.open(home=home) as services:
        rows = services.registry.query("SELECT * FROM model_versions ORDER BY version")
    for row in rows:
        folder = home / row["path"]
        assert folder.is_dir(), f"version {row['version']} has no folder"
        assert folder_digest(folder) == row["digest"], f"version {row['version']} is incomplete"
    assert [r["version"] for r in rows] == list(range(1, len(rows) + 1))
    root = home / "models"
    folders = {p for p in root.iterdir() if p.name != ".staging"} if root.is_dir() else set()
    return rows, {p for p in folders if p.name not in {r["id"] for r in rows}}


def check_datasets(home: Path, kills: int) -> list[dict]:
    """Every version row has its manifest and every file it names in the store, intact."""
    assert integrity(home / "registry.db") == "ok"
    store = home / "artifacts"
    with Services.open(home=home) as services:
        rows = services.registry.query("SELECT * FROM dataset_versions ORDER BY version")
        for row in rows:
            manifest = services.datasets.manifest(row)
            assert len(manifest) == row["file_count"]
            for rel, entry in manifest.items():
                blob = services.store.path(entry["sha256"])
                assert blob.is_file(), f"{rel} of version {row['version']} is not in the store"
                assert hashlib.sha256(blob.read_bytes()).hexdigest() == entry["sha256"]
    for blob in (store / "sha256").rglob("*"):
        if blob.is_file():  # a crash may leave blobs no version names yet, never wrong ones
            assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name
    leftovers = list((store / "tmp").iterdir())
    assert len(leftovers) <= kills, "more temporary files than crashes"
    return rows


def age(path: Path) -> None:
    old = time.time() - STALE_STAGING_SECONDS - 60
    os.utime(path, (old, old))


def test_killed_model_registration_leaves_a_whole_version_or_none(isolated_home: Path, big_model: Path) -> None:  # fmt: skip
    with Services.open(home=isolated_home) as services:
        services.workspaces.create("ws")
    kills = [("first-file-copied", None), ("staged", None), ("published", None)]
    kills += [("", delay) for delay in (0.0, 0.02, 0.05, 0.1)]
    unrecorded: set[Path] = set()
    for crash, delay in kills:
        status = write_in_child(isolated_home, big_model, "model", crash=crash, delay=delay)
        assert status in (0, -signal.SIGKILL), f"{crash or delay}: exit status {status}"
        rows, now_unrecorded = check_models(isolated_home)
        new = now_unrecorded - unrecorded
        if crash == "published":
            assert len(new) == 1, "killed right after the rename: a folder without its row"
        elif crash:
            assert not new, f"killed at {crash}, yet a folder outside .staging"
        for folder in new:  # whole copies, never listed as versions; swept once stale
            assert folder_digest(folder) == folder_digest(big_model)
        unrecorded = now_unrecorded
        if crash:
            assert not rows, f"killed at {crash}, yet a version was recorded"

    # Debris is only in .staging, plus unrecorded folders. A young one may be a live writer's,
    # so only stale ones go, at the next registration: this one leaves them, the next does not.
    staging = isolated_home / "models" / ".staging"
    debris = set(staging.iterdir()) | unrecorded
    assert len(debris) >= 3, "the injected crashes leave staging folders"
    with Services.open(home=isolated_home) as services:
        services.models.register("ws", "big", big_model)
        assert all(p.exists() for p in debris), "a young folder was swept"
        for entry in debris:
            age(entry)
        row = services.models.register("ws", "big", big_model)
    rows, unrecorded = check_models(isolated_home)
    assert rows[-1]["id"] == row["id"]
    assert row["digest"] == folder_digest(big_model)
    assert not unrecorded and not set(staging.iterdir()), "stale debris remains"
    assert not any(p.exists() for p in debris)


def test_killed_dataset_import_leaves_a_whole_version_or_none(isolated_home: Path, many_images: Path) -> None:  # fmt: skip
    with Services.open(home=isolated_home) as services:
        services.workspaces.create("ws")
    kills = [("some-files-stored", None), ("manifest-stored", None)]
    kills += [("", delay) for delay in (0.0, 0.05, 0.15, 0.3)]
    for n, (crash, delay) in enumerate(kills, start=1):
        status = write_in_child(isolated_home, many_images, "dataset", crash=crash, delay=delay)
        assert status in (0, -signal.SIGKILL), f"{crash or delay}: exit status {status}"
        rows = check_datasets(isolated_home, n)
        assert len(rows) <= 1, "the same content is one version"
        if crash:
            assert not rows, f"killed at {crash}, yet a version was recorded"

    with Services.open(home=isolated_home) as services:
        added = services.datasets.add("ws", "many", many_images)
        assert added.version["row_count"] == 300
        assert len(services.datasets.rows(added.version)) == 300
        materialized = services.datasets.materialize(added.version)
        assert sorted(p.name for p in materialized.iterdir()) == sorted(
            p.name for p in many_images.iterdir()
        )
    rows = check_datasets(isolated_home, len(kills))
    assert [r["version"] for r in rows] == [1]
