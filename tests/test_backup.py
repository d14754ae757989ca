"""Backup and restore of a real home (a trained colour model deployed and served), and the
refusal of a corrupt registry: a backup taken by `appliance backup` in another process while the
server answers and stores feedback restores into a home that passes integrity_check, holds every
feedback row acknowledged before the backup began, and serves; a file that does not match its
digest fails the backup; a tampered, cut or hostile archive restores nothing; a registry with
rows out of order (what copying a running home gave) is refused by every open, the server's
start and `appliance check`, with one error line."""

from __future__ import annotations

import io
import json
import shutil
import sqlite3
import struct
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from serving_harness import running_server, wait_ready

from appliance.backup import create, integrity
from appliance.backup.archive import MANIFEST, partial_path
from appliance.backup.create import BackupFailed, create_backup
from appliance.backup.integrity import CorruptRegistry, check_registry, problems
from appliance.backup.restore import RestoreRefused, restore_backup
from appliance.backup.retention import scheduled_backup
from appliance.cli import cli
from appliance.datasets.synthetic import generate
from appliance.errors import Conflict, InvalidInput
from appliance.runs.launcher import start_run
from appliance.scheduler.runner import run_job
from appliance.server.app import create_app
from appliance.services import Services
from appliance.serving.options import DeployOptions
from appliance.serving.service import Serving

COLOUR = Path(__file__).parent / "recipes" / "colour"
PREDICT = "/v1/endpoints/captions/predict"


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    folder = generate(tmp_path_factory.mktemp("photos") / "p", count=40, seed=6).path
    return [p.read_bytes() for p in sorted(folder.glob("*.png"))]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, photos: list[bytes]) -> Path:
    """A home with a dataset, a run, colour@1 deployed at `captions`, served predictions,
    feedback and review inputs (the dark photos come back uncertain)."""
    home = tmp_path_factory.mktemp("trained") / "home"
    data = generate(home.parent / "data", count=40, seed=6, low_light_fraction=0.5).path
    with Services.open(home=home) as services:
        services.workspaces.create("ads")
        services.datasets.add("ads", "photos", data)
        services.recipes.add("ads", COLOUR)
        run = start_run(services, "ads", "colour", "photos", {}).wait()
        assert run["status"] == "succeeded", run["error"]
        Serving(services).deploy("ads", "captions", "colour@1", DeployOptions())
    (home / "appliance.toml").write_text("review_max_bytes = 10000000\n")
    with Services.open(home=home) as services, running_server(services) as http:
        wait_ready(http)
        for image in sorted(data.glob("*.png"))[:12]:
            answer = http.post(PREDICT, content=image.read_bytes(), headers=_PNG).json()
            http.post(f"/v1/predictions/{answer['id']}/feedback", json={"rating": 3})
    return home


_PNG = {"content-type": "image/png"}


@pytest.fixture
def home(trained: Path, tmp_path: Path) -> Path:
    """A copy of the trained home this test may change."""
    copy = tmp_path / "copy"
    shutil.copytree(trained, copy, ignore=shutil.ignore_patterns("server.*", "home-id"))
    return copy


def _rows(registry: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(registry) as db:
        return db.execute(sql).fetchall()


# -- the done criterion --------------------------------------------------------------------


def test_a_backup_taken_under_load_restores_into_a_home_that_passes_integrity_check_and_serves(
    home: Path, tmp_path: Path, photos: list[bytes]
) -> None:
    acknowledged: list[int] = []
    stop = threading.Event()
    errors: list[str] = []

    def load(base: str) -> None:
        with httpx.Client(base_url=base, timeout=30) as client:
            n = 0
            while not stop.is_set():
                n += 1
                answer = client.post(PREDICT, content=photos[n % len(photos)], headers=_PNG)
                if answer.status_code != 200:
                    errors.append(f"predict {answer.status_code}")
                    continue
                rated = client.post(
                    f"/v1/predictions/{answer.json()['id']}/feedback", json={"rating": 1 + n % 5}
                )
                if rated.status_code == 201:
                    acknowledged.append(rated.json()["id"])
                else:
                    errors.append(f"feedback {rated.status_code}: {rated.text}")

    out = tmp_path / "under-load.tar"
    with Services.open(home=home) as services, running_server(services) as http:
        wait_ready(http)
        workers = [threading.Thread(target=load, args=(str(http.base_url),)) for _ in range(3)]
        for worker in workers:
            worker.start()
        try:
            while len(acknowledged) < 30:  # the load is on
                time.sleep(0.02)
            before = set(acknowledged)
            # Another process, as a person (or cron) would run it, while the server writes.
            backup = subprocess.run(
                [sys.executable, "-m", "appliance", "--home", str(home), "backup", str(out)],
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            during = len(acknowledged) - len(before)
            time.sleep(0.2)
        finally:
            stop.set()
            for worker in workers:
                worker.join()
    assert backup.returncode == 0, backup.stderr
    assert "backup written" in backup.stdout and not errors, errors[:3]
    assert during > 0  # the server kept committing feedback while the backup ran

    restored = tmp_path / "restored"
    result = restore_backup(out, restored)
    registry = restored / "registry.db"
    assert problems(registry, full=True) == []  # PRAGMA integrity_check: ok
    kept = {row[0] for row in _rows(registry, "SELECT id FROM feedback")}
    assert before <= kept  # every row committed before the backup began
    assert result.counts["feedback"] == len(kept) >= len(before) + 12
    assert sorted(p.name for p in restored.iterdir()) == [
        "appliance.toml", "artifacts", "logs", "models", "registry.db", "review",
    ]  # fmt: skip

    with Services.open(home=restored) as services, running_server(services) as http:
        wait_ready(http)
        assert [d["endpoint"] for d in http.get("/v1/deployments").json()] == ["captions"]
        answer = http.post(PREDICT, content=photos[0], headers=_PNG)
        assert answer.status_code == 200 and answer.json()["model"] == "colour"
        rated = http.post(f"/v1/predictions/{answer.json()['id']}/feedback", json={"rating": 5})
        assert rated.status_code == 201
        assert services.settings.review_max_bytes == 10_000_000  # appliance.toml came back


def test_backup_and_restore_from_the_cli_with_gzip(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "home.tar.gz"
    code, said, err = invoke("--home", str(home), "backup", str(out))
    assert code == 0, err
    assert f"backup written: {out}" in said and "each matched its digest" in said
    assert "1 model version folders" in said and "1 run logs" in said
    assert "recipes registered by path live outside the home" in said  # colour's folder
    assert out.read_bytes()[:2] == b"\x1f\x8b" and not partial_path(out).exists()
    with tarfile.open(out) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile(MANIFEST))  # type: ignore[arg-type]
    assert names[0] == "backup.json" and names[-1] == MANIFEST and "registry.db" in names
    assert not any(n.startswith(("datasets/", "tmp/", "models/.staging")) for n in names)
    assert manifest["format"] == 1 and manifest["created_at"].endswith("Z")
    listed = {f["path"]: f for f in manifest["files"]}
    assert set(listed) == set(names) - {"backup.json", MANIFEST}
    blob = next(n for n in listed if n.startswith("artifacts/sha256/"))
    assert listed[blob]["sha256"] == blob.rsplit("/", 1)[1] and listed[blob]["size"] > 0

    target = tmp_path / "new" / "home"
    code, said, err = invoke("restore", str(out), str(target))
    assert code == 0, err
    assert f"restored {out} into {target}" in said and "passed integrity_check" in said
    assert f"serve it: appliance --home {target} serve" in said
    # Run logs recorded under the old home now point into the new one.
    (log,) = _rows(target / "registry.db", "SELECT log_path FROM runs")
    assert log[0].startswith(f"{target}/logs/runs/") and Path(log[0]).is_file()
    code, said, err = invoke("--home", str(target), "check", "--full", "--files")
    assert code == 0, err
    assert "ok (integrity_check" in said and "each matches its digest" in said
    code, _, err = invoke("restore", str(out), str(target))
    assert code == 1 and f"{target} is not empty" in err and err.count("\n") == 1


def test_backup_into_a_folder_names_the_archive_by_time(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "usb"
    folder.mkdir()
    code, said, err = invoke("--home", str(home), "backup", str(folder), "--no-logs", "--json")
    assert code == 0, err
    answer = json.loads(said)
    assert Path(answer["path"]).parent == folder and answer["logs"] == 0
    assert Path(answer["path"]).name.startswith("appliance-") and answer["models"] == 1
    code, _, err = invoke("--home", str(home), "backup", answer["path"])
    assert code == 1 and "already exists" in err


# -- what a backup refuses ------------------------------------------------------------------


def _a_blob(home: Path) -> Path:
    (sha,) = _rows(home / "registry.db", "SELECT sha256 FROM run_artifacts LIMIT 1") or [None]
    blobs = sorted((home / "artifacts" / "sha256").glob("*/*"))
    return blobs[len(blobs) // 2] if sha is None else home / "artifacts/sha256" / sha[:2] / sha


def test_a_blob_that_does_not_match_its_name_fails_the_backup(home: Path, tmp_path: Path) -> None:
    blob = _a_blob(home)
    blob.chmod(0o644)
    blob.write_bytes(blob.read_bytes() + b"rot")
    out = tmp_path / "bad.tar"
    with pytest.raises(BackupFailed, match=f"{blob.name[:12]}.*does not match its name") as failed:
        create_backup(home, out)
    assert "nothing was written to" in str(failed.value) and len(failed.value.problems) == 1
    assert not out.exists() and not partial_path(out).exists()
    assert list((home / "tmp").glob("backup-*")) == []  # the snapshot is cleaned up too
    code, _, err = invoke("--home", str(home), "check", "--files")
    assert code == 1 and "problem: " in err and "does not match its name" in err


def test_a_changed_or_missing_model_file_fails_the_backup(home: Path, tmp_path: Path) -> None:
    (folder,) = [p for p in (home / "models").iterdir() if p.name != ".staging"]
    config = folder / "config.json"
    config.chmod(0o644)
    config.write_text(config.read_text().replace("first_word", "first_w0rd"))
    missing = _a_blob(home)
    missing.unlink()
    with pytest.raises(BackupFailed) as failed:
        create_backup(home, tmp_path / "bad.tar")
    found = " | ".join(failed.value.problems)
    assert f"models/{folder.name} (model version ads/colour@1) does not match its digest" in found
    assert f"{missing.name} (" in found and "is missing" in found
    assert not (tmp_path / "bad.tar").exists()


def test_a_review_input_gone_after_the_snapshot_is_let_go(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = create.find_references

    def then_a_person_reviews(db: sqlite3.Connection, at: Path) -> create.References:
        found = real(db, at)
        (at / found.review[0].path).unlink()  # between the snapshot and its copy
        return found

    monkeypatch.setattr(create, "find_references", then_a_person_reviews)
    items = len(_rows(home / "registry.db", "SELECT id FROM review_items"))
    assert items > 1
    result = create_backup(home, tmp_path / "b.tar")
    assert result.review_gone == 1 and result.review == items - 1
    restored = tmp_path / "restored"
    restore_backup(tmp_path / "b.tar", restored)
    rows = _rows(restored / "registry.db", "SELECT input_file, bytes FROM review_items")
    assert len(rows) == items and sum(1 for f, b in rows if f is None and b == 0) == 1
    assert all((restored / f).is_file() for f, _ in rows if f)


# -- what a restore refuses -----------------------------------------------------------------


@pytest.fixture(scope="module")
def archive(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("archive") / "home"
    shutil.copytree(trained, copy, ignore=shutil.ignore_patterns("server.*"))
    return create_backup(copy, copy.parent / "good.tar").path


def _refused(source: Path, tmp_path: Path, match: str) -> None:
    target = tmp_path / "target"
    with pytest.raises(RestoreRefused, match=match):
        restore_backup(source, target)
    assert not target.exists() and list(tmp_path.glob(".target.restoring-*")) == []


def test_a_tampered_byte_restores_nothing(archive: Path, tmp_path: Path) -> None:
    data = bytearray(archive.read_bytes())
    with tarfile.open(archive) as tar:
        model = next(m for m in tar.getmembers() if m.name.endswith("model.safetensors"))
    data[model.offset_data + model.size // 2] ^= 0xFF
    tampered = tmp_path / "tampered.tar"
    tampered.write_bytes(bytes(data))
    _refused(tampered, tmp_path, r"model\.safetensors does not match the manifest")


def test_a_cut_archive_or_another_file_restores_nothing(archive: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.tar"
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    _refused(cut, tmp_path, "has no manifest|not a complete backup archive")
    other = tmp_path / "other.tar"
    with tarfile.open(other, "w") as tar:
        tar.add(archive, arcname="registry.db")
    _refused(other, tmp_path, "is not an appliance backup")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    _refused(text, tmp_path, "not a complete backup archive")


@pytest.mark.parametrize(
    ("name", "kind"),
    [("../outside", tarfile.REGTYPE), ("/etc/evil", tarfile.REGTYPE),
     ("models/x/link", tarfile.SYMTYPE), ("artifacts/sha256/ab/" + "c" * 64, tarfile.REGTYPE),
     ("bin/tool", tarfile.REGTYPE)],
)  # fmt: skip
def test_a_hostile_member_restores_nothing(
    archive: Path, tmp_path: Path, name: str, kind: bytes
) -> None:
    hostile = tmp_path / "hostile.tar"
    with tarfile.open(archive) as good, tarfile.open(hostile, "w") as tar:
        first = good.getmembers()[0]
        tar.addfile(first, good.extractfile(first))
        info = tarfile.TarInfo(name)
        info.type, info.linkname, info.size = kind, "/etc/passwd", 0
        tar.addfile(info, io.BytesIO(b""))
    _refused(hostile, tmp_path, "not a file a backup writes")
    assert not (tmp_path / "outside").exists()


def test_a_newer_format_is_refused_with_what_to_do(archive: Path, tmp_path: Path) -> None:
    newer = tmp_path / "newer.tar"
    header = json.dumps({"kind": "appliance-backup", "format": 99, "appliance_version": "9.0"})
    with tarfile.open(newer, "w") as tar:
        info = tarfile.TarInfo("backup.json")
        info.size = len(header)
        tar.addfile(info, io.BytesIO(header.encode()))
    _refused(newer, tmp_path, "format 99, from appliance 9.0.*restore it with that version")


def test_restore_fills_an_empty_folder_but_not_a_file(archive: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert restore_backup(archive, empty).home == empty
    assert (empty / "registry.db").is_file()
    file = tmp_path / "file"
    file.write_text("")
    with pytest.raises(Conflict, match="is a file"):
        restore_backup(archive, file)


# -- a corrupt registry ---------------------------------------------------------------------


def rows_out_of_order(registry: Path, table: str = "events") -> None:
    """Swap the first two cells of `table`'s root page: SQLite opens the file and answers
    queries, and quick_check reports 'Rowid … out of order' (what a copy of a running home
    gave two times in four)."""
    with sqlite3.connect(registry) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page = db.execute("PRAGMA page_size").fetchone()[0]
        (root,) = db.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = ?", [table]
        ).fetchone()
    db.close()
    with registry.open("r+b") as handle:
        handle.seek((root - 1) * page)
        data = bytearray(handle.read(page))
        assert data[0] == 0x0D and struct.unpack(">H", data[3:5])[0] >= 2  # a leaf, 2+ rows
        data[8:10], data[10:12] = data[10:12], data[8:10]
        handle.seek((root - 1) * page)
        handle.write(data)


def test_a_registry_with_rows_out_of_order_is_refused_with_how_to_restore(
    home: Path, tmp_path: Path
) -> None:
    backups = home / "backups"
    backups.mkdir()
    good = create_backup(home, backups / "nightly.tar").path
    rows_out_of_order(home / "registry.db")
    for args in (("workspace", "list"), ("check",), ("backup", str(tmp_path / "x.tar"))):
        code, out, err = invoke("--home", str(home), *args)
        assert code == 1 and out == "", args
        assert err.count("\n") == 1 and err.startswith("error: the registry "), err
        assert "registry.db is corrupt: On tree page" in err and "out of order" in err
        assert "appliance restore BACKUP NEWHOME" in err and f"newest backup here is {good}" in err
    assert not (tmp_path / "x.tar").exists()
    with pytest.raises(CorruptRegistry, match="out of order"):
        Services.open(home=home)  # the Python client too


def test_the_server_start_and_a_backup_check_a_registry_of_any_size(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(integrity, "OPEN_CHECK_MAX_BYTES", 0)  # as if it were a large one
    rows_out_of_order(home / "registry.db")
    with Services.open(home=home) as services:  # an ordinary open no longer looks
        with pytest.raises(CorruptRegistry, match="out of order"):
            create_app(services)
        with pytest.raises(CorruptRegistry, match="out of order"):
            create_backup(home, tmp_path / "x.tar")
    assert not (tmp_path / "x.tar").exists()


def test_corrupt_pages_met_by_a_query_give_the_same_one_line(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(integrity, "OPEN_CHECK_MAX_BYTES", 0)
    registry = home / "registry.db"
    with sqlite3.connect(registry) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page = db.execute("PRAGMA page_size").fetchone()[0]
        (root,) = db.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'workspaces'"
        ).fetchone()
    db.close()
    with registry.open("r+b") as handle:
        handle.seek((root - 1) * page)
        handle.write(b"\xff" * page)
    code, out, err = invoke("--home", str(home), "workspace", "list")
    assert code == 1 and out == "" and err.count("\n") == 1, err
    assert "is corrupt: database disk image is malformed" in err and "internal error" not in err


def test_quick_check_at_open_stays_cheap_on_a_small_registry(trained: Path) -> None:
    checked = check_registry(trained / "registry.db")
    assert checked.check == "quick_check" and checked.seconds < 0.05
    assert integrity.OPEN_CHECK_MAX_BYTES >= 8 * 2**20


# -- the scheduled backup job ---------------------------------------------------------------


def test_a_backup_job_keeps_the_newest_archives_of_its_own(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    folder.mkdir()
    others = ["ads+nightly-x-20200101T000000Z.tar", "ads+other-20200101T000000Z.tar", "notes.txt"]
    for name in others:
        (folder / name).write_text("not this job's")
    (folder / "ads+nightly-20200101T000000Z.tar.partial").write_text("a killed run's")
    with Services.open(home=home) as services:
        job = services.jobs.add(
            "ads", "nightly", "backup", {"cron": "0 3 * * *"}, "",
            {"output": str(folder), "keep": 2, "compress": True},
        )  # fmt: skip
        runs = [run_job(services, job, "manual") for _ in range(3)]
    assert [r["status"] for r in runs] == ["succeeded"] * 3, runs[-1]["detail"]
    detail = runs[-1]["detail"]
    made = Path(detail["archive"])
    assert made.parent == folder and made.name.startswith("ads+nightly-") and made.is_file()
    assert made.name.endswith(".tar.gz") and detail["size"] == made.stat().st_size
    assert detail["kept"] == 2 and detail["removed"] == 1
    assert runs[0]["detail"]["removed"] == 1  # the partial a killed run left
    mine = sorted(p.name for p in folder.glob("ads+nightly-2*"))
    assert len(mine) == 2 and made.name in mine
    assert all((folder / name).read_text() == "not this job's" for name in others)
    restore_backup(made, tmp_path / "restored")
    assert problems(tmp_path / "restored" / "registry.db", full=True) == []


def test_a_backup_job_defaults_to_the_homes_backups_folder(home: Path) -> None:
    with Services.open(home=home) as services:
        detail = scheduled_backup(home, "ads", "weekly", {})
        assert Path(detail["archive"]).parent == home / "backups"
        assert detail["kept"] == 1 and detail["removed"] == 0
        with pytest.raises(InvalidInput, match="keep must be a whole number"):
            services.jobs.add("ads", "b", "backup", {"interval_s": 60}, "", {"keep": 0})
        with pytest.raises(InvalidInput, match="not colour"):
            services.jobs.add("ads", "b", "backup", {"interval_s": 60}, "", {"colour": "red"})
        job = services.jobs.add(
            "ads", "b", "backup", {"interval_s": 60}, "", {"output": "/no/such/disk"}
        )
        run = run_job(services, job, "manual")
    assert (
        run["status"] == "failed"
        and "does not exist (is its disk mounted?)" in run["detail"]["error"]
    )


def test_job_add_from_the_cli(home: Path, tmp_path: Path) -> None:
    code, out, err = invoke(
        "--home", str(home), "job", "add", "ads", "nightly", "--kind", "backup",
        "--cron", "0 2 * * *", "--output", str(tmp_path), "--param", "keep=14",
    )  # fmt: skip
    assert code == 0, err
    assert out.strip() == "job nightly added: backup, cron 0 2 * * *"


# -- the migration that allows the kind -----------------------------------------------------


def test_jobs_and_their_runs_survive_the_migration_that_adds_the_backup_kind(
    tmp_path: Path,
) -> None:
    home = tmp_path / "old"
    home.mkdir()
    shutil.copy(Path(__file__).parent / "fixtures" / "home-a33912e" / "registry.db", home)
    with sqlite3.connect(home / "registry.db") as old:
        (ws,) = old.execute("SELECT id FROM workspaces").fetchone()
        old.execute(
            "INSERT INTO jobs (id, workspace_id, name, kind, trigger, created_at, updated_at)"
            " VALUES ('j1', ?, 'tidy', 'housekeeping', '{\"interval_s\": 60}', 't', 't')",
            [ws],
        )
        old.execute(
            "INSERT INTO job_runs (id, job_id, cause, status, started_at)"
            " VALUES ('r1', 'j1', 'manual', 'succeeded', 't')"
        )
    old.close()
    with Services.open(home=home) as services:
        assert [r["id"] for r in services.jobs.runs("j1")] == ["r1"]
        assert services.jobs.runs("j1")[0]["lane"] == "job:j1"
        services.jobs.add("ads", "nightly", "backup", {"interval_s": 60})
        services.jobs.remove("ads", "tidy")  # the cascade still reaches job_runs
        assert services.registry.query("SELECT count(*) AS n FROM job_runs") == [{"n": 0}]
        assert services.registry.query("PRAGMA foreign_key_check") == []


def test_a_version_deleted_while_the_backup_runs_says_run_it_again(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real, calls = create.find_references, []

    def then_someone_deletes(db: sqlite3.Connection, at: Path) -> create.References:
        found = real(db, at)
        calls.append(1)
        if len(calls) == 1:  # after the snapshot: the workspace goes, and its files with it
            with Services.open(home=at) as services:
                services.workspaces.delete("ads", force=True)
            for folder in found.models:  # (gone already where a delete frees its files)
                shutil.rmtree(at / folder.path, ignore_errors=True)
        return found

    monkeypatch.setattr(create, "find_references", then_someone_deletes)
    with pytest.raises(BackupFailed, match=r"was deleted after the snapshot.*run the backup again"):
        create_backup(home, tmp_path / "b.tar")
    assert not (tmp_path / "b.tar").exists()
