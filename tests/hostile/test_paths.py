"""Names and paths never escape the home: hostile names are refused with a clear InvalidInput,
imagefolders and model folders that point outside are refused with nothing imported, recipes stay
inside their folder, no code path trusts remote code, and hostile URL path segments get a 4xx.
After every refusal the home holds exactly the files it held before."""

from __future__ import annotations

import json
import os
import re
import struct
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from conftest import write_metadata
from PIL import Image
from serving_harness import running_server, wait_ready

from appliance.cli import cli
from appliance.errors import InvalidInput
from appliance.services import Services
from appliance.serving.options import DeployOptions
from appliance.serving.service import Serving

ROOT = Path(__file__).parents[2]
COLOUR = ROOT / "tests" / "recipes" / "colour"
# SQLite's side files come and go with connections; they are not something a request left.
_VOLATILE = re.compile(r"registry\.db-(wal|shm|journal)$")

BAD_NAMES = [
    "",
    ".",
    "..",
    "../x",
    "..\\x",
    "a/b",
    "a\\b",
    "/etc",
    "/etc/passwd",
    "C:\\Windows",
    "a\0b",
    "x" * 65,
    "x" * 10_000,
    ".hidden",
    "-rf",
    "a b",
    "ads\n",
    "\nads",
    "ads\t",
    "ａｄｓ",  # fullwidth letters
    "\u0430ds",  # a Cyrillic а
    "ads\u202e",  # right-to-left override
    "ads\u200b",  # zero-width space
    "café",
    "a..b",
    "%2e%2e",
    "~root",
    "$HOME",
]


def snapshot(home: Path) -> set[str]:
    return {p.relative_to(home).as_posix() for p in home.rglob("*") if not _VOLATILE.search(p.name)}


@pytest.fixture
def ws(services: Services) -> Services:
    services.workspaces.create("ws")
    for part in ("store", "datasets", "models", "recipes", "deployments", "jobs", "events"):
        getattr(services, part)  # lay out the home's own folders before any snapshot
    return services


def image(path: Path, colour: tuple[int, int, int] = (200, 0, 0)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 16), colour).save(path, format="PNG")
    return path


def model_folder(folder: Path) -> Path:
    """The smallest folder validate_model_folder accepts: config.json and a safetensors file."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    header = b"{}"
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header)
    return folder


def laid_out(home: Path) -> Path:
    """The home with its own folders made, as any first command makes them."""
    with Services.open(home=home) as services:
        for part in ("store", "datasets", "models", "recipes", "deployments", "jobs", "events"):
            getattr(services, part)
    return home


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout + result.stderr


# --- names --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", BAD_NAMES, ids=[repr(n)[:24] for n in BAD_NAMES])
def test_hostile_names_are_refused_everywhere(ws: Services, tmp_path: Path, name: str) -> None:
    home = ws.settings.home
    photos = tmp_path / "photos"
    image(photos / "a.png")
    write_metadata(photos, [{"file_name": "a.png", "text": "red"}])
    model_folder(tmp_path / "model")
    ws.models.register("ws", "m", tmp_path / "model")
    before = snapshot(home)
    attempts = {
        "workspace": lambda: ws.workspaces.create(name),
        "dataset": lambda: ws.datasets.add("ws", name, photos),
        "model": lambda: ws.models.register("ws", name, tmp_path / "model"),
        "alias": lambda: ws.models.set_alias("ws", "m@1", name),
        "endpoint": lambda: Serving(ws).deploy("ws", name, "m@1", DeployOptions()),
        "deployment record": lambda: ws.deployments.record(
            "ws", name, ws.models.get("ws", "m@1"), DeployOptions()
        ),
        "job": lambda: ws.jobs.add("ws", name, "housekeeping", {"interval_s": 60}),
    }
    for kind, attempt in attempts.items():
        with pytest.raises(InvalidInput) as refused:
            attempt()
        message = str(refused.value)
        said = "alias" if kind == "alias" else "name"
        assert said in message and len(message) < 400, (kind, message)
        assert snapshot(home) == before, kind
    assert [w["name"] for w in ws.workspaces.list()] == ["ws"]
    assert ws.datasets.list("ws") == [] and [m["name"] for m in ws.models.list("ws")] == ["m"]
    assert ws.deployments.list() == [] and ws.jobs.list("ws") == []


@pytest.mark.parametrize("name", ["../x", "a/b", "/etc/passwd", "a\0b", "", "x" * 300, "ａｄｓ"])
def test_hostile_names_through_the_cli(isolated_home: Path, tmp_path: Path, name: str) -> None:
    assert invoke("workspace", "create", "ws")[0] == 0
    laid_out(isolated_home)
    model_folder(tmp_path / "model")
    photos = tmp_path / "photos"
    image(photos / "a.png")
    write_metadata(photos, [{"file_name": "a.png", "text": "red"}])
    before = snapshot(isolated_home)
    commands = [
        ("workspace", "create", name),
        ("dataset", "add", "ws", name, str(photos)),
        ("model", "register", "ws", name, str(tmp_path / "model")),
        ("job", "add", "ws", name, "--kind", "housekeeping", "--every", "1m"),
    ]
    for command in commands:
        code, output = invoke(*command)
        assert code == 1 and "error:" in output and "name" in output, (command, output)
        assert "Traceback" not in output and "bug" not in output.lower(), output
        assert snapshot(isolated_home) == before, command


# --- imagefolders -------------------------------------------------------------------------


def _folder_with(tmp_path: Path, rows: list[dict]) -> Path:
    folder = tmp_path / "data"
    image(folder / "ok.png")
    write_metadata(folder, [{"file_name": "ok.png", "text": "fine"}, *rows])
    return folder


def test_imagefolder_entries_that_escape_are_refused(ws: Services, tmp_path: Path) -> None:
    outside = image(tmp_path / "outside.png", (0, 0, 200))
    image(tmp_path / "elsewhere" / "secret.png")
    home = ws.settings.home
    hostile = [
        "../outside.png",
        "sub/../../outside.png",
        str(outside),
        "/etc/passwd",
        "..\\outside.png",
        "./../outside.png",
        "a\0b.png",
        "x" * 5000 + ".png",
        "/" * 3 + "etc/passwd",
    ]
    for file_name in hostile:
        folder = _folder_with(tmp_path, [{"file_name": file_name, "text": "x"}])
        before = snapshot(home)
        with pytest.raises(InvalidInput) as refused:
            ws.datasets.add("ws", "photos", folder)
        assert "nothing was imported" in str(refused.value), file_name
        assert snapshot(home) == before and ws.datasets.list("ws") == [], file_name


def test_imagefolder_symlinks_to_outside_are_refused(ws: Services, tmp_path: Path) -> None:
    outside = image(tmp_path / "outside.png", (0, 0, 200))
    secret_dir = tmp_path / "elsewhere"
    image(secret_dir / "secret.png")
    home = ws.settings.home
    cases: dict[str, Path] = {}

    linked_file = _folder_with(tmp_path / "file", [{"file_name": "link.png", "text": "x"}])
    (linked_file / "link.png").symlink_to(outside)
    cases["a file that is a symlink"] = linked_file

    linked_dir = _folder_with(tmp_path / "dir", [{"file_name": "linked/secret.png", "text": "x"}])
    (linked_dir / "linked").symlink_to(secret_dir, target_is_directory=True)
    cases["a file under a symlinked folder"] = linked_dir

    linked_meta = tmp_path / "meta"
    image(linked_meta / "ok.png")
    real_meta = tmp_path / "real-meta"
    real_meta.mkdir()
    write_metadata(real_meta, [{"file_name": "ok.png", "text": "fine"}])
    (linked_meta / "metadata.jsonl").symlink_to(real_meta / "metadata.jsonl")
    cases["metadata.jsonl that is a symlink"] = linked_meta

    for why, folder in cases.items():
        before = snapshot(home)
        with pytest.raises(InvalidInput) as refused:
            ws.datasets.add("ws", "photos", folder)
        assert "link" in str(refused.value), (why, str(refused.value))
        assert snapshot(home) == before and ws.datasets.list("ws") == [], why
    # the same folders with the links replaced by real files are fine: the refusal was the link
    ok = _folder_with(tmp_path / "fine", [])
    assert ws.datasets.add("ws", "photos", ok).created


def test_imagefolder_refusal_through_the_cli(isolated_home: Path, tmp_path: Path) -> None:
    assert invoke("workspace", "create", "ws")[0] == 0
    laid_out(isolated_home)
    folder = _folder_with(tmp_path, [{"file_name": "../outside.png", "text": "x"}])
    image(tmp_path / "outside.png")
    before = snapshot(isolated_home)
    code, output = invoke("dataset", "add", "ws", "photos", str(folder))
    assert code == 1 and "must be a relative path inside the folder" in output, output
    assert snapshot(isolated_home) == before


# --- model folders ------------------------------------------------------------------------


def test_model_folders_with_pickles_or_symlinks_are_refused(ws: Services, tmp_path: Path) -> None:
    home = ws.settings.home
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "weights.safetensors").write_bytes(struct.pack("<Q", 2) + b"{}")
    (outside / "config.json").write_text("{}")
    cases: dict[str, Path] = {}

    pickle = model_folder(tmp_path / "pickle")
    (pickle / "pytorch_model.bin").write_bytes(b"\x80\x04\x95" + b"\0" * 32)  # a pickle header
    cases["pickle"] = pickle
    for suffix in (".pt", ".pth", ".pkl", ".ckpt"):
        folder = model_folder(tmp_path / f"pickle{suffix}")
        (folder / "sub").mkdir()
        (folder / "sub" / f"optimizer{suffix}").write_bytes(b"\x80\x04")
        cases[f"nested {suffix}"] = folder

    linked = model_folder(tmp_path / "linked")
    (linked / "extra.safetensors").symlink_to(outside / "weights.safetensors")
    cases["a symlinked weights file"] = linked
    linked_config = tmp_path / "linked-config"
    linked_config.mkdir()
    (linked_config / "model.safetensors").write_bytes(struct.pack("<Q", 2) + b"{}")
    (linked_config / "config.json").symlink_to(outside / "config.json")
    cases["a symlinked config.json"] = linked_config
    linked_dir = model_folder(tmp_path / "linked-dir")
    (linked_dir / "shards").symlink_to(outside, target_is_directory=True)
    cases["a symlinked folder"] = linked_dir
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "config.json").write_text("{}")
    (fake / "model.safetensors").write_bytes(b"\x80\x04\x95 this is a pickle really")
    cases["a pickle named .safetensors"] = fake

    for why, folder in cases.items():
        before = snapshot(home)
        with pytest.raises(InvalidInput) as refused:
            ws.models.register("ws", "m", folder)
        assert "cannot be registered" in str(refused.value), why
        assert snapshot(home) == before and ws.models.list("ws") == [], why
    code, output = invoke("--home", str(home), "model", "register", "ws", "m", str(pickle))
    assert code == 1 and "pickle" in output and ws.models.list("ws") == [], output
    assert ws.models.register("ws", "m", model_folder(tmp_path / "fine"))["version"] == 1


# --- recipes and remote code --------------------------------------------------------------


def _recipe(folder: Path, name: str = "evil", module: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    text = (COLOUR / "recipe.toml").read_text()
    text = re.sub(r'(?m)^name = ".*"$', f"name = {json.dumps(name)}", text)
    text = re.sub(r'(?m)^module = ".*"\n', "", text)
    text = f"module = {json.dumps(module or 'x.py')}\n" + text
    (folder / "recipe.toml").write_text(text)
    (folder / "x.py").write_text("def train(ctx): ...\n")
    return folder


def test_recipe_folders_cannot_reach_outside(ws: Services, tmp_path: Path) -> None:
    (tmp_path / "evil.py").write_text("raise SystemExit('imported from outside')\n")
    home = ws.settings.home
    cases = {
        "module ../": _recipe(tmp_path / "a", module="../evil.py"),
        "module absolute": _recipe(tmp_path / "b", module=str(tmp_path / "evil.py")),
        "module nested ..": _recipe(tmp_path / "c", module="sub/../../evil.py"),
        "module missing": _recipe(tmp_path / "d", module="nope.py"),
        "name ../x": _recipe(tmp_path / "e", name="../x"),
        "name with /": _recipe(tmp_path / "f", name="a/b"),
        "no recipe.toml": tmp_path / "empty",
    }
    (tmp_path / "empty").mkdir()
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "recipe.toml").write_text("name = [unclosed")
    cases["bad toml"] = tmp_path / "g"
    for why, folder in cases.items():
        before = snapshot(home)
        with pytest.raises(InvalidInput):
            ws.recipes.add("ws", folder)
        assert snapshot(home) == before, why
        assert all(r["source"] == "built-in" for r in ws.recipes.list("ws")), why
    assert ws.recipes.add("ws", COLOUR).name == "colour"


def test_no_code_path_trusts_remote_code() -> None:
    sources = [
        p
        for top in ("appliance", "models", "tui")
        for p in (ROOT / top).rglob("*.py")
        if "__pycache__" not in p.parts
    ]
    assert len(sources) > 20
    for path in sources:
        text = path.read_text()
        for match in re.finditer(r"trust_remote_code\s*[=:]\s*(\w+)", text):
            assert match.group(1) == "False", f"{path}: {match.group(0)}"
        for match in re.finditer(r"trust_remote_code", text):
            after = text[match.end() : match.end() + 20]
            assert re.match(r"\s*[=:]\s*False", after), f"{path}: trust_remote_code{after}"
    loading = (ROOT / "appliance" / "models" / "loading.py").read_text()
    assert "use_safetensors=True" in loading and "local_files_only=True" in loading


# --- HTTP path segments -------------------------------------------------------------------


@pytest.fixture
def client(ws: Services) -> Iterator[httpx.Client]:
    with running_server(ws) as client:
        wait_ready(client)
        yield client


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/workspaces/..%2F..%2Fetc/monitoring/summary"),
        ("GET", "/v1/workspaces/%2E%2E/monitoring/drift"),
        ("GET", "/v1/workspaces/%2Fetc%2Fpasswd/monitoring/alerts"),
        ("GET", "/v1/workspaces/ws%00/monitoring/feedback"),
        ("GET", "/v1/workspaces/..%5C..%5Cwindows/monitoring/dora"),
        ("GET", "/v1/workspaces/..%2F..%2Fetc/jobs"),
        ("GET", "/v1/workspaces/ws/jobs/..%2F..%2Fregistry.db"),
        ("DELETE", "/v1/workspaces/ws/jobs/..%2Fx"),
        ("POST", "/v1/workspaces/ws/jobs/..%2Fx/run"),
        ("POST", "/v1/workspaces/ws/jobs/..%2Fx/pause"),
        ("GET", "/v1/predictions/..%2F..%2Fregistry.db"),
        ("POST", "/v1/predictions/..%2Fx/feedback"),
        ("POST", "/v1/job-runs/..%2Fx/approve"),
        ("POST", "/v1/deployments/..%2Fx/rollback"),
        ("GET", "/v2/models/..%2F..%2Fetc"),
        ("GET", "/v2/models/..%2Fx/versions/..%2F1/ready"),
    ],
)
def test_hostile_path_segments_get_a_4xx(
    ws: Services, client: httpx.Client, method: str, path: str
) -> None:
    before = snapshot(ws.settings.home)
    answer = client.request(method, path, json={"workspace": "ws", "correct": True})
    assert 400 <= answer.status_code < 500, (path, answer.status_code, answer.text[:300])
    assert "error" in answer.json() and "Traceback" not in answer.text
    assert snapshot(ws.settings.home) - before <= {"logs"}, path


@pytest.mark.parametrize("name", ["../x", "a/b", "/etc/passwd", "a\0b", "", "x" * 300])
def test_hostile_names_in_http_bodies_get_400(
    ws: Services, client: httpx.Client, tmp_path: Path, name: str
) -> None:
    ws.models.register("ws", "m", model_folder(tmp_path / "model"))
    before = snapshot(ws.settings.home)
    job = client.post(
        "/v1/workspaces/ws/jobs", json={"name": name, "kind": "housekeeping", "trigger": "every 1m"}
    )
    deploy = client.post(
        "/v1/deployments", json={"workspace": "ws", "endpoint": name, "model": "m@1"}
    )
    for answer in (job, deploy):
        assert answer.status_code == 400, answer.text[:300]
        assert "name" in answer.json()["error"] and "Traceback" not in answer.text
    assert snapshot(ws.settings.home) == before
    assert ws.jobs.list("ws") == [] and ws.deployments.list() == []


def test_the_snapshot_sees_a_stray_file(ws: Services, tmp_path: Path) -> None:
    """The snapshot helper itself: it does see a new file, so the comparisons above mean something."""
    before = snapshot(ws.settings.home)
    (ws.settings.home / "stray").write_text("x")
    assert snapshot(ws.settings.home) - before == {"stray"}
    os.remove(ws.settings.home / "stray")
