import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from appliance.errors import InvalidInput, NotFound
from appliance.services import Services


@pytest.fixture
def ws(services: Services) -> str:
    services.workspaces.create("ads")
    return "ads"


def test_register_versions_are_immutable_copies(
    services: Services, ws: str, tiny_model: Path
) -> None:
    v1 = services.models.register(ws, "captioner", tiny_model, metrics={"exact_match": 0.9})
    v2 = services.models.register(ws, "captioner", tiny_model)
    assert (v1["version"], v2["version"]) == (1, 2)
    assert v1["digest"] == v2["digest"] and v1["id"] != v2["id"]
    folder = services.models.folder(v1)
    for original in tiny_model.iterdir():
        copied = folder / original.name
        assert copied.read_bytes() == original.read_bytes()
        assert not os.access(copied, os.W_OK) or os.geteuid() == 0
        assert copied.stat().st_mode & 0o222 == 0  # read-only
    assert services.models.get(ws, "captioner@1")["metrics"] == {"exact_match": 0.9}
    assert services.models.get(ws, "captioner")["version"] == 2  # latest by default


def test_pickle_weights_are_refused(
    services: Services, ws: str, tiny_model: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "pickled"
    shutil.copytree(tiny_model, folder)
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04not really")
    with pytest.raises(InvalidInput, match=r"pytorch_model\.bin is a pickle file"):
        services.models.register(ws, "captioner", folder)
    assert services.registry.query("SELECT * FROM model_versions") == []
    assert [p.name for p in (services.settings.home / "models").glob("*")] in ([], [".staging"])


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        ("no config", "config.json is missing"),
        ("no weights", "no .safetensors weights found"),
        ("bad weights", "unreadable safetensors header"),
        ("not a folder", "is not a folder"),
    ],
)
def test_bad_model_folders(
    services: Services, ws: str, tiny_model: Path, tmp_path: Path, breakage: str, message: str
) -> None:
    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    if breakage == "no config":
        (folder / "config.json").unlink()
    elif breakage == "no weights":
        (folder / "model.safetensors").unlink()
    elif breakage == "bad weights":
        (folder / "model.safetensors").write_bytes(
            b"\x10\x00\x00\x00\x00\x00\x00\x00garbage!garbage!"
        )
    else:
        folder = tmp_path / "missing"
    with pytest.raises(InvalidInput, match=message):
        services.models.register(ws, "captioner", folder)


def _real_weights(folder: Path, floats: int) -> Path:
    """A model folder whose model.safetensors is written by the safetensors library."""
    import numpy as np
    from safetensors.numpy import save_file

    weights = folder / "model.safetensors"
    weights.unlink()
    save_file({"w": np.arange(floats, dtype=np.float32)}, str(weights))
    return weights


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("truncated", r"is truncated: its header says [\d,]+ bytes but the file has"),
        ("extended", r"is sparse: [\d,]+ bytes long but only [\d,]+ on disk"),
        ("trailing", r"has 16 bytes after its last tensor"),
    ],
)
def test_weights_must_fill_their_file_with_real_bytes(
    services: Services, ws: str, tiny_model: Path, tmp_path: Path, change: str, message: str
) -> None:
    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    weights = _real_weights(folder, 4096)
    size = weights.stat().st_size
    services.models.register(ws, "fine", folder)  # as the library wrote it: accepted
    if change == "truncated":
        os.truncate(weights, size - 100)
    elif change == "extended":  # the measured case: a header pointing 2 GB past a tiny file
        header = json.dumps(
            {"w": {"dtype": "U8", "shape": [2 << 30], "data_offsets": [0, 2 << 30]}}
        ).encode()
        weights.write_bytes(len(header).to_bytes(8, "little") + header)
        os.truncate(weights, 8 + len(header) + (2 << 30))  # a hole: no byte written
        assert weights.stat().st_blocks * 512 < 1 << 20
    else:
        with weights.open("ab") as handle:
            handle.write(b"\0" * 16)
    before = _disk_bytes(services.settings.home)
    with pytest.raises(InvalidInput, match=message):
        services.models.register(ws, "broken", folder)
    assert _disk_bytes(services.settings.home) - before < 1 << 20  # nothing copied in
    assert [v["name"] for v in services.models.list(ws)] == ["fine"]


def _disk_bytes(root: Path) -> int:
    return sum(p.lstat().st_blocks * 512 for p in root.rglob("*"))


def test_aliases_move_and_are_events(services: Services, ws: str, tiny_model: Path) -> None:
    services.models.register(ws, "captioner", tiny_model)
    services.models.register(ws, "captioner", tiny_model)
    assert services.models.set_alias(ws, "captioner@1", "production")["version"] == 1
    services.models.set_alias(ws, "captioner@2", "production")
    assert services.models.get(ws, "captioner@production")["version"] == 2
    assert services.models.aliases(ws, "captioner") == {"production": 2}
    services.models.unset_alias(ws, "captioner", "production")
    with pytest.raises(NotFound, match="no version or alias 'production'"):
        services.models.get(ws, "captioner@production")
    with pytest.raises(NotFound, match="has no alias 'staging'"):
        services.models.unset_alias(ws, "captioner", "staging")
    with pytest.raises(InvalidInput, match="would read as a version"):
        services.models.set_alias(ws, "captioner@1", "v3")
    kinds = [e["kind"] for e in services.events.list(services.workspaces.get(ws)["id"])]
    assert kinds == [
        "alias_unset",
        "alias_set",
        "alias_set",
        "model_registered",
        "model_registered",
    ]


def test_client_loads_a_registered_version(isolated_home: Path, tiny_model: Path) -> None:
    import torch

    import appliance

    with appliance.connect(home=str(isolated_home)) as client:
        ws = client.workspace("ads")
        with ws.start_run(recipe="notebook") as run:
            version = run.register_model(tiny_model, "lm")
        loaded = ws.load_model("lm@1")
    assert type(loaded).__name__ == "BertForSequenceClassification"
    assert version.record["run_id"] == run.id
    from safetensors.torch import load_file

    original = load_file(tiny_model / "model.safetensors")
    for name, tensor in loaded.state_dict().items():
        if name in original:
            assert torch.equal(tensor, original[name])


REGISTER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from appliance.services import Services
    with Services.open(home=sys.argv[1]) as services:
        services.workspaces.ensure("ads")
        print("ready", flush=True)
        services.models.register("ads", "big", Path(sys.argv[2]))
        print("registered", flush=True)
    """
)


def _folder_digest(folder: Path) -> str:
    entries = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        entries.append(
            [path.relative_to(folder).as_posix(), hashlib.sha256(data).hexdigest(), len(data)]
        )
    return hashlib.sha256(json.dumps(entries, separators=(",", ":")).encode()).hexdigest()


def _raw_safetensors(data: bytes) -> bytes:
    """A safetensors file holding `data` as one U8 tensor."""
    header = json.dumps(
        {"w": {"dtype": "U8", "shape": [len(data)], "data_offsets": [0, len(data)]}}
    )
    return len(header).to_bytes(8, "little") + header.encode() + data


def test_killed_registration_leaves_no_partial_version(tmp_path: Path, tiny_model: Path) -> None:
    big = tmp_path / "big"
    shutil.copytree(tiny_model, big)
    for i in range(40):  # enough bytes that a kill can land mid-copy
        (big / f"shard-{i:02d}.safetensors").write_bytes(_raw_safetensors(os.urandom(1_000_000)))
    home = tmp_path / "home"
    killed = 0
    for delay in (0.0, 0.02, 0.08, 0.2, 0.5):
        proc = subprocess.Popen(
            [sys.executable, "-c", REGISTER, str(home), str(big)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed += proc.returncode == -signal.SIGKILL and "registered" not in proc.stdout.read()
    assert killed >= 2, "no kill landed during a registration; the test proved nothing"
    with Services.open(home=home) as services:
        for row in services.registry.query("SELECT * FROM model_versions"):
            assert _folder_digest(home / row["path"]) == row["digest"]
        version = services.models.register("ads", "big", big)  # still works afterwards
        assert version["version"] == 1 + len(services.registry.query(
            "SELECT id FROM model_versions WHERE id != ?", (version["id"],)
        ))  # fmt: skip
