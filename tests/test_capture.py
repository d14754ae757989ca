"""The capture queue on its own: a full queue drops captures and counts every one, a slow disk
never blocks the caller, and everything accepted reaches the registry."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from appliance.monitoring.capture import LINGER_S, Capture
from appliance.registry import utcnow
from appliance.services import Services
from appliance.serving.observer import CaptureRecord
from appliance.settings import Settings


def record(i: int) -> CaptureRecord:
    return CaptureRecord(
        id=f"p{i:05d}", workspace="ads", endpoint="captions", model_version_id=None,
        created_at=utcnow(), latency_ms=1.0, description="red mug", confidence=0.9,
        features={"width": 64.0, "brightness": 120.0},
    )  # fmt: skip


def test_a_full_queue_drops_and_counts_but_never_blocks(isolated_home: Path) -> None:
    settings = Settings.load(home=isolated_home, capture_queue_size=5)
    with Services(settings) as services:
        services.workspaces.create("ads")
        capture = Capture(services.registry, settings)
        # Another process holds the write lock: the capture thread's next write must wait.
        locker = sqlite3.connect(settings.registry_path, isolation_level=None)
        locker.execute("BEGIN IMMEDIATE")
        try:
            # The first capture reaches the writer (after the batch's linger) and waits there.
            accepted = [capture.record(record(0))]
            time.sleep(LINGER_S * 5)
            started = time.perf_counter()
            accepted += [capture.record(record(i)) for i in range(1, 200)]
            elapsed = time.perf_counter() - started
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        capture.flush()
        capture.close()
        stored = services.registry.query("SELECT id FROM predictions ORDER BY id")
    assert elapsed < 1.0  # 200 hand-overs while the disk is locked: no waiting
    assert capture.recorded + capture.dropped == 200
    assert capture.dropped >= 200 - 5 - 1 - 1  # queue size, one in the writer, one in hand
    assert capture.written == capture.recorded == sum(accepted)
    assert [r["id"] for r in stored] == [f"p{i:05d}" for i, ok in enumerate(accepted) if ok]


def test_disabled_capture_records_nothing(isolated_home: Path) -> None:
    settings = Settings.load(home=isolated_home, capture_enabled=False)
    with Services(settings) as services:
        services.workspaces.create("ads")
        capture = Capture(services.registry, settings)
        assert capture.record(record(1)) is False and capture.keep_thumbnail() is False
        capture.flush()
        capture.close()
        assert services.registry.query("SELECT COUNT(*) AS n FROM predictions")[0]["n"] == 0


def test_retention_by_age_and_rows(services: Services) -> None:
    services.workspaces.create("ads")
    capture = Capture(services.registry, services.settings)
    for i in range(10):
        capture.record(record(i))
    old = record(99)
    old.created_at = "2020-01-01T00:00:00.000000Z"
    capture.record(old)
    capture.flush()
    capture.close()
    assert services.predictions.prune(retention_days=30, max_rows=4) == 7
    kept = services.registry.query("SELECT id FROM predictions ORDER BY id")
    assert [r["id"] for r in kept] == ["p00006", "p00007", "p00008", "p00009"]


def test_captures_are_batched_and_a_flush_does_not_wait_for_the_linger(
    services: Services,
) -> None:
    services.workspaces.create("ads")
    capture = Capture(services.registry, services.settings)
    transactions = []
    write = services.registry.write
    services.registry.write = lambda job, durable=True: (
        transactions.append(1),
        write(job, durable),
    )[1]  # type: ignore
    for i in range(20):  # a trickle: one every millisecond
        capture.record(record(i))
        time.sleep(0.001)
    started = time.perf_counter()
    capture.flush()
    flushed_in = time.perf_counter() - started
    capture.close()
    assert services.registry.query("SELECT COUNT(*) AS n FROM predictions")[0]["n"] == 20
    assert len(transactions) <= 5  # one per linger, not one per prediction
    assert flushed_in < LINGER_S * 10


def test_a_limited_window_holds_the_newest_predictions_oldest_first(services: Services) -> None:
    services.workspaces.create("ads")
    capture = Capture(services.registry, services.settings)
    for i in range(10):
        item = record(i)
        item.created_at = f"2026-01-01T00:00:{i:02d}.000000Z"
        capture.record(item)
    capture.flush()
    capture.close()
    rows = services.predictions.window("ads", "captions", since="2026-01-01", limit=4)
    assert [r["id"] for r in rows] == ["p00006", "p00007", "p00008", "p00009"]
    assert "seq" not in rows[0]
    assert [r["id"] for r in services.predictions.recent("ads", limit=2)] == ["p00008", "p00009"]


def test_the_capture_thread_adds_word_features_against_the_versions_vocabulary(
    services: Services,
) -> None:
    services.workspaces.create("ads")
    asked: list[str] = []

    def vocabulary(version_id: str) -> frozenset[str]:
        asked.append(version_id)
        return frozenset({"red", "mug"}) if version_id == "v1" else frozenset()

    capture = Capture(services.registry, services.settings, vocabulary)
    items = [record(i) for i in range(4)]
    items[0].model_version_id, items[0].words = "v1", "Red mug, zebra quagga zebra!"
    items[1].model_version_id, items[1].words = "v1", "red MUG"
    items[2].model_version_id, items[2].words = "v2", "red zebra"  # a version without words
    items[3].model_version_id = "v1"  # an input without words (a photo without keywords)
    for item in items:
        capture.record(item)
    capture.flush()
    capture.close()
    rows = {r["id"]: r for r in services.predictions.recent("ads", limit=10)}
    first, second, third, fourth = (rows[item.id]["features"] for item in items)
    assert first == {"width": 64.0, "brightness": 120.0, "oov_rate": 0.6, "new_words": 2.0}
    assert second["oov_rate"] == 0.0 and second["new_words"] == 0.0
    assert "oov_rate" not in third and "oov_rate" not in fourth
    assert items[0].features == {"width": 64.0, "brightness": 120.0}  # the answer's own: untouched
    assert sorted(asked) == ["v1", "v1", "v2"]  # only for records with words
    stored = json.dumps(services.registry.query("SELECT * FROM predictions"), default=str)
    assert "zebra" not in stored and "quagga" not in stored  # the words are never kept
