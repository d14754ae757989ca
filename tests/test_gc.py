"""Deleting versions and workspaces, and `appliance gc`: each gives back the bytes it says, as
the filesystem counts them (st_blocks, each inode once), and never a file a row still names."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import write_metadata

from appliance.cli import cli
from appliance.errors import Conflict, NotFound
from appliance.scheduler.runner import run_job
from appliance.services import Services
from appliance.serving.options import DeployOptions
from appliance.serving.service import Serving

OLD = time.time() - 7200


@pytest.fixture
def services(isolated_home: Path) -> Iterator[Services]:
    with Services.open(home=isolated_home, gc_grace_seconds=0) as opened:
        opened.workspaces.create("ads")
        yield opened


def disk_bytes(home: Path) -> int:
    """What the home holds on disk, each inode once; the registry's own files are left out
    (deleting rows reuses their pages, and the WAL grows with every write)."""
    seen: dict[tuple[int, int], int] = {}
    for path in home.rglob("*"):
        if not path.name.startswith("registry.db"):
            stat = path.lstat()
            seen[(stat.st_dev, stat.st_ino)] = stat.st_blocks * 512
    return sum(seen.values())


def blobs(home: Path) -> set[str]:
    return {p.name for p in (home / "artifacts" / "sha256").glob("*/*")}


def changed_copy(photos: Path, to: Path) -> Path:
    """`photos` with one image dropped and one relabelled: a second version sharing the rest."""
    shutil.copytree(photos, to)
    rows = [json.loads(line) for line in (to / "metadata.jsonl").read_text().splitlines()]
    (to / rows.pop()["file_name"]).unlink()
    rows[0]["text"] = "relabelled"
    write_metadata(to, rows)
    return to


def test_dataset_delete_frees_what_it_alone_held(
    services: Services, photos: Path, tmp_path: Path
) -> None:
    home = services.settings.home
    v1 = services.datasets.add("ads", "photos", photos).version
    v2 = services.datasets.add("ads", "photos", changed_copy(photos, tmp_path / "v2")).version
    services.datasets.materialize(v1)
    before = disk_bytes(home)
    label, freed = services.datasets.delete("ads", "photos@1")
    assert label == "photos@1" and freed.bytes > 0
    assert before - disk_bytes(home) == freed.bytes
    # v2 lost nothing: every file of its manifest is still stored
    assert all(services.store.has(e["sha256"]) for e in services.datasets.manifest(v2).values())
    assert not (home / "datasets" / v1["digest"]).exists()
    assert not services.store.has(v1["digest"])
    with pytest.raises(NotFound, match="no version '1'"):
        services.datasets.get("ads", "photos@1")
    # a number names one version for good: the same content comes back as version 3
    assert services.datasets.add("ads", "photos", photos).version["version"] == 3


def test_dataset_delete_is_refused_while_it_is_used(
    services: Services, photos: Path, tiny_model: Path
) -> None:
    version = services.datasets.add("ads", "photos", photos).version
    lineage = {"dataset_id": version["dataset_id"], "dataset_digest": version["digest"]}
    services.models.register("ads", "lm", tiny_model, **lineage)
    services.jobs.add("ads", "nightly", "retrain", {"interval_s": 3600}, "lm",
                      {"recipe": "captioner", "dataset": "photos@1"})  # fmt: skip
    with pytest.raises(Conflict) as refused:
        services.datasets.delete("ads", "photos@1")
    assert str(refused.value) == (
        "dataset photos@1 is not deleted: it is the training data of lm@1; job 'nightly' "
        "retrains on photos@1; delete those first, or pass --force to delete it anyway"
    )
    run = services.runs.create("ads", recipe="captioner", status="queued", **lineage)
    with pytest.raises(Conflict, match=f"run {run['id']} \\(queued\\) trains on it"):
        services.datasets.delete("ads", "photos@1", force=True)  # never while a run needs it
    services.runs.set_status(run["id"], "cancelled")
    services.datasets.delete("ads", "photos@1", force=True)
    assert services.datasets.versions("ads", "photos") == []
    assert services.models.get("ads", "lm@1")["dataset_digest"] == version["digest"]  # lineage


def test_model_delete_refusals_and_what_stays(services: Services, tiny_model: Path) -> None:
    home = services.settings.home
    v1 = services.models.register("ads", "lm", tiny_model)
    v2 = services.models.register("ads", "lm", tiny_model)
    services.models.set_alias("ads", "lm@1", "production")
    services.deployments.record("ads", "captions", v1, DeployOptions())
    with pytest.raises(Conflict) as refused:
        services.models.delete("ads", "lm@1", force=True)
    assert str(refused.value) == (
        "lm@1 is not deleted: it is deployed at endpoint 'captions' (deploy another version "
        "there first); it holds the alias 'production' (move it with `appliance model alias "
        "set`, or remove it with `appliance model alias unset`)"
    )
    services.deployments.record("ads", "captions", v2, DeployOptions())
    services.models.unset_alias("ads", "lm", "production")
    with pytest.raises(Conflict, match="endpoint 'captions' rolls back to it; pass --force"):
        services.models.delete("ads", "lm@1")
    services.registry.write(
        lambda db: db.execute(
            "INSERT INTO predictions (id, workspace_id, endpoint, model_version_id, created_at)"
            " VALUES ('p1', ?, 'captions', ?, 'now')",
            [services.workspaces.get("ads")["id"], v1["id"]],
        )
    )
    before = disk_bytes(home)
    label, freed = services.models.delete("ads", "lm@1", force=True)
    assert label == "lm@1" and freed.bytes >= v1["size"]
    assert before - disk_bytes(home) == freed.bytes
    assert not (home / v1["path"]).exists() and (home / v2["path"]).is_dir()
    # monitoring history keeps the version's id; the next version never reuses its number
    assert services.registry.query("SELECT model_version_id FROM predictions") == [
        {"model_version_id": v1["id"]}
    ]
    assert [v["version"] for v in services.models.versions("ads", "lm")] == [2]
    with pytest.raises(NotFound, match="served before was deleted"):
        Serving(services).rollback("ads", "captions")
    services.registry.write(lambda db: db.execute("DELETE FROM deployments"))  # undeployed
    services.models.delete("ads", "lm@2")
    assert services.models.register("ads", "lm", tiny_model)["version"] == 3


def test_gc_takes_only_what_no_row_names_and_is_old(services: Services, photos: Path) -> None:
    home = services.settings.home
    kept = services.datasets.add("ads", "photos", photos).version
    stray = services.store.put_bytes(b"an upload whose row never came")
    young = services.store.put_bytes(b"an upload whose row is on its way")
    (home / "models" / "0123456789ab").mkdir(parents=True)  # a version folder without its row
    (home / "models" / "0123456789ab" / "model.safetensors").write_bytes(os.urandom(50_000))
    (home / "models" / ".staging" / "cafe").mkdir(parents=True)
    (home / "models" / ".staging" / "cafe" / "config.json").write_text("{}")
    (home / "artifacts" / "tmp" / "tmpabc").write_bytes(os.urandom(10_000))
    (home / "logs" / "runs").mkdir(parents=True)
    (home / "logs" / "runs" / "feedbeef0000.log").write_text("a deleted run's log\n")
    (home / "tmp" / "runs" / "feedbeef0000" / "model").mkdir(parents=True)
    sparse = home / "tmp" / "watch-x" / "huge.bin"
    sparse.parent.mkdir(parents=True)
    with sparse.open("wb") as handle:
        handle.write(os.urandom(4096))
    os.truncate(sparse, 1 << 30)  # 1 GiB long, 4 KiB on disk: counted as the 4 KiB
    for path in [*home.rglob("*")]:
        if path.name != young.sha256 and not path.name.startswith("registry.db"):
            os.utime(path, (OLD, OLD), follow_symlinks=False)
    services.collector.grace_s = 3600
    plan = services.collector.plan()
    gone = {g.path.relative_to(home).as_posix(): g.kind for g in plan.items}
    assert gone == {
        f"artifacts/sha256/{stray.sha256[:2]}/{stray.sha256}": "blob",
        "artifacts/tmp/tmpabc": "temp",
        "models/0123456789ab": "model folder",
        "models/.staging/cafe": "staging",
        "logs/runs/feedbeef0000.log": "run log",
        "tmp/runs/feedbeef0000": "scratch",
        "tmp/watch-x": "scratch",
    }
    assert plan.young_bytes > 0  # the young upload
    assert next(g for g in plan.items if g.path.name == "watch-x").bytes < 1 << 20
    before = disk_bytes(home)
    freed = services.collector.collect(plan)
    assert freed.items == len(gone) and before - disk_bytes(home) == freed.bytes == plan.bytes
    assert services.store.has(young.sha256) and not services.store.has(stray.sha256)
    for entry in services.datasets.manifest(kept).values():
        assert services.store.has(entry["sha256"])
    assert services.collector.plan().items == []


def test_a_blob_stored_again_after_planning_stays(services: Services) -> None:
    blob = services.store.put_bytes(b"the same bytes, uploaded again")
    os.utime(services.store.path(blob.sha256), (OLD, OLD))
    services.collector.grace_s = 60
    plan = services.collector.plan()
    assert [g.kind for g in plan.items] == ["blob"]
    services.store.put_bytes(b"the same bytes, uploaded again")  # an upload, its row to come
    assert services.collector.collect(plan).items == 0
    assert services.store.has(blob.sha256)


def test_workspace_delete_removes_its_files_not_shared_ones(
    services: Services, photos: Path, tiny_model: Path
) -> None:
    home = services.settings.home
    services.workspaces.create("other")
    shared = services.datasets.add("other", "photos", photos).version
    services.datasets.add("ads", "photos", photos)
    version = services.models.register("ads", "lm", tiny_model)
    run = services.runs.create("ads", recipe="captioner", log_path=str(home / "logs/runs/r.log"))
    (home / "logs" / "runs").mkdir(parents=True, exist_ok=True)
    (home / "logs" / "runs" / f"{run['id']}.log").write_text("trained\n" * 1000)
    with pytest.raises(Conflict, match=f"run {run['id']} \\(running\\) uses it"):
        services.workspaces.delete("ads", force=True)
    services.runs.set_status(run["id"], "succeeded")
    before = disk_bytes(home)
    freed = services.workspaces.delete("ads", force=True)
    assert freed is not None and freed.bytes > version["size"]
    assert before - disk_bytes(home) == freed.bytes
    assert not (home / version["path"]).exists()
    assert not (home / "logs" / "runs" / f"{run['id']}.log").exists()
    assert all(services.store.has(e["sha256"]) for e in services.datasets.manifest(shared).values())
    services.workspaces.delete("other", force=True)
    assert blobs(home) == set()


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def test_cli_gc_dry_run_then_gc_frees_what_it_said(isolated_home: Path, photos: Path) -> None:
    assert invoke("workspace", "create", "ads")[0] == 0
    assert invoke("dataset", "add", "ads", "photos", str(photos))[0] == 0
    code, out = invoke("dataset", "delete", "ads", "photos@1")
    assert code == 0 and out.startswith("deleted dataset photos@1; freed ")
    assert "stay for `appliance gc`" in out  # stored just now: within the grace period
    code, out = invoke("gc", "--dry-run", "--grace", "0", "--json")
    planned = json.loads(out)
    assert code == 0 and planned["bytes"] > 0 and {i["kind"] for i in planned["items"]} == {"blob"}
    before = disk_bytes(isolated_home)
    code, out = invoke("gc", "--grace", "0", "--json")
    assert code == 0 and json.loads(out)["bytes"] == planned["bytes"]
    assert before - disk_bytes(isolated_home) == planned["bytes"]
    code, out = invoke("gc", "--dry-run")
    assert code == 0 and "would free 0 B (0 bytes, 0 items)" in out
    code, out = invoke("model", "delete", "ads", "lm")
    assert code == 1 and "say which version of 'lm' to delete: lm@VERSION" in out


def test_housekeeping_collects_and_says_how_much(services: Services) -> None:
    stray = services.store.put_bytes(os.urandom(20_000))
    services.jobs.add("ads", "tidy", "housekeeping", {"interval_s": 3600}, "", {})
    done = run_job(services, services.jobs.get("ads", "tidy"), "manual")
    assert done["status"] == "succeeded"
    assert done["detail"]["gc_removed"] == 1 and done["detail"]["gc_freed_bytes"] >= 20_000
    assert not services.store.has(stray.sha256)


def test_a_running_backups_snapshot_stays_whatever_the_grace(services: Services) -> None:
    work = services.settings.home / "tmp" / "backup-20261202T000000000000"
    work.mkdir(parents=True)
    (work / "registry.db").write_bytes(b"a snapshot being archived")
    services.collector.grace_s = 0
    assert [g.path for g in services.collector.plan().items] == []  # touched just now
    for path in (work / "registry.db", work):  # its backup died long ago: scratch
        os.utime(path, (OLD, OLD))
    assert [g.path for g in services.collector.plan().items] == [work]


def test_a_version_s_backend_exports_go_with_it(services: Services, tiny_model: Path) -> None:
    """`exports/<version id>` (appliance/runtimes/backends/export.py) is kept while its version
    exists: deleting the version frees it, and gc takes one a crash left without a version."""
    home = services.settings.home
    v1 = services.models.register("ads", "lm", tiny_model)
    v2 = services.models.register("ads", "lm", tiny_model)
    for version_id in (v1["id"], v2["id"], "0123456789ab"):
        export = home / "exports" / version_id / "onnxruntime-none"
        export.mkdir(parents=True)
        (export / "decoder.onnx").write_bytes(os.urandom(20_000))
    for path in home.rglob("*"):
        if "exports" in path.parts:
            os.utime(path, (OLD, OLD), follow_symlinks=False)
    gone = {g.path.relative_to(home).as_posix() for g in services.collector.plan().items}
    assert gone == {"exports/0123456789ab"}  # no version of that id
    _, freed = services.models.delete("ads", "lm@1")
    assert freed.bytes >= 20_000 and not (home / "exports" / v1["id"]).exists()
    assert (home / "exports" / v2["id"] / "onnxruntime-none" / "decoder.onnx").is_file()
