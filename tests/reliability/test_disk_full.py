"""A full disk (a small tmpfs holding the home) or a file size limit (RLIMIT_FSIZE): the CLI says
so in one line, nothing half-written is recorded or left taking space, what was there before is
intact, and once there is room the same command succeeds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from crash_harness import REPO, integrity, small_tmpfs
from PIL import Image
from safetensors.numpy import save_file

from appliance.cli import cli
from appliance.services import Services

DISK_MB = 24
CHUNK = 1 << 20


def invoke(home: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env={"APPLIANCE_HOME": str(home)})
    return result.exit_code, result.stdout, result.stderr


def assert_clear_no_space(code: int, err: str) -> None:
    assert code == 1, err
    assert err.startswith("error: no space left") and err.count("\n") == 1, err
    assert "internal error" not in err and "Traceback" not in err, err


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A fresh DISK_MB tmpfs, mounted for this test only."""
    with small_tmpfs(tmp_path, DISK_MB) as disk:
        yield disk


def free_bytes(path: Path) -> int:
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def fill(disk: Path, leave: int) -> Path:
    """Take all the free space of `disk` but `leave` bytes (0: until writes fail)."""
    filler = disk / "filler"
    with filler.open("ab") as out:
        while (room := free_bytes(disk) - leave) > 0:
            try:
                out.write(b"\0" * min(room, CHUNK))
                out.flush()
            except OSError:
                break
    return filler


def big_model(folder: Path, mb: int) -> Path:
    """A folder that serves (registering checks it) with `mb` MB of incompressible extra
    weights beside the model's own."""
    from appliance.testing.hf_folders import build

    build("bert-cls", folder)
    weights = np.random.default_rng(mb).random(mb * CHUNK // 4, dtype=np.float32)
    save_file({"weight": weights}, str(folder / "extra.safetensors"))
    return folder


def noisy_images(folder: Path, count: int) -> Path:
    """An imagefolder of incompressible photos (about 190 KB each)."""
    folder.mkdir()
    rng = np.random.default_rng(count)
    rows = []
    for i in range(count):
        pixels = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:03}.png")
        rows.append(json.dumps({"file_name": f"{i:03}.png", "text": f"red noise {i}"}))
    (folder / "metadata.jsonl").write_text("\n".join(rows) + "\n")
    return folder


def check_earlier_data(home: Path, tiny_digest: str) -> None:
    """The registry is sound and what was added before the disk filled still reads back."""
    assert integrity(home / "registry.db") == "ok"
    with Services.open(home=home) as services:
        tiny = services.models.get("ws", "tiny@1")
        assert tiny["digest"] == tiny_digest
        assert (home / tiny["path"] / "config.json").is_file()
        version = services.datasets.get("ws", "photos@1")
        assert len(services.datasets.rows(version)) == 24
        for entry in services.datasets.manifest(version).values():
            assert len(services.store.read_bytes(entry["sha256"])) == entry["size"]


def test_full_disk_gives_a_clear_error_and_no_corruption(
    small_disk: Path, tmp_path: Path, photos: Path, tiny_model: Path
) -> None:
    home = small_disk / "home"
    assert invoke(home, "workspace", "create", "ws")[0] == 0
    code, _, err = invoke(home, "dataset", "add", "ws", "photos", str(photos))
    assert code == 0, err
    code, _, err = invoke(home, "model", "register", "ws", "tiny", str(tiny_model))
    assert code == 0, err
    with Services.open(home=home) as services:
        tiny_digest = services.models.get("ws", "tiny@1")["digest"]

    # A model version that does not fit: the staged copy fails part way.
    model = big_model(tmp_path / "big", mb=8)
    filler = fill(small_disk, leave=3 * CHUNK)
    code, _, err = invoke(home, "model", "register", "ws", "big", str(model))
    assert_clear_no_space(code, err)
    check_earlier_data(home, tiny_digest)
    staging = home / "models" / ".staging"
    assert not staging.is_dir() or not list(staging.iterdir()), "the failed copy still takes space"
    with Services.open(home=home) as services:
        assert [m["name"] for m in services.models.list("ws")] == ["tiny"]
    filler.unlink()
    code, out, err = invoke(home, "model", "register", "ws", "big", str(model))
    assert code == 0 and out.startswith("registered big@1"), err

    # A dataset that does not fit: some files reach the store, the version is not recorded.
    images = noisy_images(tmp_path / "noise", count=30)
    filler = fill(small_disk, leave=2 * CHUNK)
    code, _, err = invoke(home, "dataset", "add", "ws", "noise", str(images))
    assert_clear_no_space(code, err)
    check_earlier_data(home, tiny_digest)
    assert not list((home / "artifacts" / "tmp").iterdir()), "a temporary file takes space"
    with Services.open(home=home) as services:
        assert services.registry.query("SELECT * FROM dataset_versions WHERE row_count = 30") == []
    filler.unlink()
    code, out, err = invoke(home, "dataset", "add", "ws", "noise", str(images))
    assert code == 0 and out.startswith("added noise@1 (") and ": 30 images" in out, err

    # Not a byte left: the registry's own write fails, and says so.
    filler = fill(small_disk, leave=0)
    code, _, err = invoke(home, "workspace", "create", "other")
    assert_clear_no_space(code, err)
    filler.unlink()
    check_earlier_data(home, tiny_digest)
    code, _, err = invoke(home, "workspace", "create", "other")
    assert code == 0, err
    assert integrity(home / "registry.db") == "ok"


# Runs the CLI under a file size limit: a write past it fails with EFBIG instead of SIGXFSZ.
LIMITED = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
from appliance.cli import main
sys.argv = ["appliance", *sys.argv[2:]]
main()
"""


def test_file_size_limit_gives_a_clear_error_and_no_corruption(
    isolated_home: Path, tmp_path: Path, tiny_model: Path
) -> None:
    """No root needed: RLIMIT_FSIZE makes the big write fail as a full disk would."""
    assert invoke(isolated_home, "workspace", "create", "ws")[0] == 0
    code, _, err = invoke(isolated_home, "model", "register", "ws", "tiny", str(tiny_model))
    assert code == 0, err
    with Services.open(home=isolated_home) as services:
        tiny_digest = services.models.get("ws", "tiny@1")["digest"]
    model = big_model(tmp_path / "big", mb=4)
    env = {**os.environ, "APPLIANCE_HOME": str(isolated_home)}
    limited = subprocess.run(
        [sys.executable, "-c", LIMITED, str(2 * CHUNK), "model", "register", "ws", "big", str(model)],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert limited.returncode != -signal.SIGXFSZ
    assert_clear_no_space(limited.returncode, limited.stderr)
    assert integrity(isolated_home / "registry.db") == "ok"
    staging = isolated_home / "models" / ".staging"
    assert not staging.is_dir() or not list(staging.iterdir())
    with Services.open(home=isolated_home) as services:
        assert services.models.get("ws", "tiny@1")["digest"] == tiny_digest
        assert [m["name"] for m in services.models.list("ws")] == ["tiny"]
    code, out, err = invoke(isolated_home, "model", "register", "ws", "big", str(model))
    assert code == 0 and out.startswith("registered big@1"), err
