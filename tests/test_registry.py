import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from appliance.registry import Registry
from appliance.registry.database import connect
from appliance.registry.migrations import MIGRATIONS
from appliance.services import Services

TABLES = {
    "workspaces", "datasets", "dataset_versions", "runs", "run_metrics", "run_artifacts",
    "models", "model_versions", "model_aliases", "deployments", "events",
}  # fmt: skip


def test_migrations_from_empty_then_reopen(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    with Registry(path) as registry:
        assert set(registry.db.table_names()) >= TABLES
        applied = registry.query("SELECT name FROM _sqlite_migrations")
    assert [a["name"] for a in applied] == [m.name for m in MIGRATIONS._migrations]
    with Registry(path) as registry:  # reopening applies nothing twice
        assert len(registry.query("SELECT name FROM _sqlite_migrations")) == len(applied)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_failed_write_leaves_nothing(services: Services) -> None:
    def half_then_fail(db):  # type: ignore[no-untyped-def]
        db.execute("INSERT INTO workspaces (id, name, created_at) VALUES ('w1', 'half', 'now')")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        services.registry.write(half_then_fail)
    assert services.registry.query("SELECT * FROM workspaces") == []


def test_writes_from_many_threads(services: Services) -> None:
    services.workspaces.create("ws")
    run = services.runs.create("ws")

    def log(offset: int) -> None:
        for step in range(200):
            services.runs.log_metric(run["id"], f"m{offset}", step * 0.5, step)

    threads = [threading.Thread(target=log, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    metrics = services.runs.metrics(run["id"])
    assert sorted(metrics) == ["m0", "m1", "m2", "m3"]
    assert all(len(points) == 200 for points in metrics.values())


WRITER = textwrap.dedent(
    """
    import sys
    from appliance.services import Services
    home, tag = sys.argv[1], sys.argv[2]
    with Services.open(home=home) as services:
        services.workspaces.ensure("shared")
        for i in range(40):
            run = services.runs.create("shared", name=f"{tag}-{i}")
            for step in range(25):
                services.runs.log_metric(run["id"], "loss", 1.0 / (step + 1), step)
            services.runs.set_status(run["id"], "succeeded")
    """
)


def test_two_processes_write_at_once(tmp_path: Path) -> None:
    home = tmp_path / "shared-home"
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(home), tag], stderr=subprocess.PIPE)
        for tag in ("a", "b", "c")
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    with Services.open(home=home) as services:
        runs = services.runs.list("shared")
        assert len(runs) == 120
        assert {r["status"] for r in runs} == {"succeeded"}
        (count,) = services.registry.db.execute("SELECT count(*) FROM run_metrics").fetchone()
        assert count == 120 * 25
        assert services.registry.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_migration_0003_backfills_the_recipe_of_existing_versions(tmp_path: Path) -> None:
    import sqlite_utils

    path = tmp_path / "registry.db"
    old = sqlite_utils.Database(path)
    MIGRATIONS.apply(old, stop_before="0003_model_version_recipe")
    old.execute("INSERT INTO workspaces VALUES ('w', 'ws', '', 'now')")
    old.execute(
        "INSERT INTO runs (id, workspace_id, recipe, status, created_at)"
        " VALUES ('r', 'w', 'captioner', 'succeeded', 'now')"
    )
    old.execute("INSERT INTO models VALUES ('m', 'w', 'cap', '', 'now')")
    old.execute(
        "INSERT INTO model_versions (id, model_id, version, path, digest, size, run_id, created_at)"
        " VALUES ('v', 'm', 1, 'models/v', 'd', 1, 'r', 'now')"
    )
    old.conn.commit()
    old.close()
    with Registry(path) as registry:
        assert registry.query("SELECT recipe FROM model_versions") == [{"recipe": "captioner"}]


def test_a_workspace_with_calibrated_versions_deletes_and_0014_keeps_the_calibrations(
    tmp_path: Path,
) -> None:
    import sqlite_utils

    from appliance.workspaces import Workspaces

    path = tmp_path / "registry.db"
    old = sqlite_utils.Database(path)
    MIGRATIONS.apply(old, stop_before="0014_version_trust_cascade")
    old.execute("INSERT INTO workspaces (id, name, created_at) VALUES ('w', 'ws', 'now')")
    old.execute("INSERT INTO models VALUES ('m', 'w', 'cap', '', 'now')")
    for vid, version in (("v1", 1), ("v2", 2)):
        old.execute(
            "INSERT INTO model_versions (id, model_id, version, path, digest, size, created_at)"
            " VALUES (?, 'm', ?, 'models/v', 'd', 1, 'now')",
            [vid, version],
        )
        old.execute(
            "INSERT INTO version_trust (model_version_id, trust, reference, dims, created_at)"
            " VALUES (?, '{\"kept\": \"platt\"}', x'0000', 1, 'now')",
            [vid],
        )
    old.conn.commit()
    old.close()
    with Registry(path) as registry:
        rows = registry.query("SELECT model_version_id, trust, dims FROM version_trust")
        assert rows == [
            {"model_version_id": v, "trust": '{"kept": "platt"}', "dims": 1} for v in ("v1", "v2")
        ]
        # Before 0014 this failed on the foreign key: the calibrations go with their versions.
        Workspaces(registry).delete("ws", force=True)
        assert registry.query("SELECT count(*) AS n FROM version_trust") == [{"n": 0}]
        assert registry.query("SELECT count(*) AS n FROM model_versions") == [{"n": 0}]


def _open_files(path: Path) -> int:
    """File descriptors of this process open on `path` or its WAL files."""
    names = {str(path), f"{path}-wal", f"{path}-shm"}
    count = 0
    for fd in Path("/proc/self/fd").iterdir():
        try:
            count += str(fd.readlink()) in names
        except OSError:
            continue
    return count


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_readers_close_with_their_threads_so_thread_churn_leaves_handles_flat(
    tmp_path: Path,
) -> None:
    # A thread pool replaces idle workers: before, each dead reader thread left its connection
    # (and its file handles) open for the life of the process.
    with Registry(tmp_path / "registry.db") as registry:
        registry.query("SELECT 1")
        counts = []
        for _ in range(6):
            barrier = threading.Barrier(8)

            def read(barrier: threading.Barrier = barrier) -> None:
                barrier.wait()
                assert registry.query("SELECT count(*) AS n FROM workspaces")[0]["n"] == 0

            threads = [threading.Thread(target=read) for _ in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert registry.open_readers == 1  # this thread's; the eight dead ones are closed
            counts.append(_open_files(registry.path))
        # SQLite defers closing a file descriptor while another connection of the process holds
        # a lock on the file (closing it would drop that lock) and reuses it at a later open, so
        # some may linger from one cycle to the next (at most one cycle's: eight connections,
        # each with the database and its WAL); they must not grow with the cycles, as they did
        # by 16 a cycle before.
        assert max(counts) - min(counts) <= 16, counts


def test_durable_writes_commit_with_synchronous_full_and_the_others_with_normal(
    tmp_path: Path,
) -> None:
    def level(db: object) -> int:
        return int(db.execute("PRAGMA synchronous").fetchone()[0])  # type: ignore[attr-defined]

    with Registry(tmp_path / "registry.db") as registry:
        # 2 is FULL (the WAL fsynced at COMMIT), 1 NORMAL; in any order, each write gets its own.
        assert registry.write(level) == 2
        assert registry.write(level, durable=False) == 1
        assert registry.write(level, durable=False) == 1
        assert registry.write(level) == 2


def test_connect_waits_out_another_connection_switching_a_new_file(tmp_path: Path) -> None:
    """Two processes opening one new home at once both switch the file to WAL. The loser holds a
    shared lock and wants an exclusive one while the winner holds a reserved lock, and SQLite
    answers BUSY at once, without the busy handler. A reserved lock held for 0.3 s stands in for
    the winner, deterministically; before connect retried, this failed in 0 ms (and CI once)."""
    path = tmp_path / "new.db"
    held, release = threading.Event(), threading.Event()

    def winner() -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("CREATE TABLE t (x)")
        conn.execute("BEGIN IMMEDIATE")
        held.set()
        release.wait(5)
        conn.execute("COMMIT")
        conn.close()

    thread = threading.Thread(target=winner)
    thread.start()
    held.wait(5)
    threading.Timer(0.3, release.set).start()
    try:
        conn = connect(path, 5_000)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        conn.close()
    finally:
        release.set()
        thread.join()
