"""Capture: every prediction becomes a row, without serving ever waiting on the disk.

Serving hands each answered (or failed) prediction to `Capture.record`, which only puts it on a
bounded in-memory queue. One thread drains the queue in batches and writes each batch in one
transaction through the registry's writer; thumbnails are made there too, off the request path.
A full queue drops the capture — counted in `dropped` and exported — never the request.
When the filesystem holding the home has less than `capture_min_free_mb` left, capture pauses
(counted in `paused`) before the disk is full, so the registry keeps room for the rows a client
is told are stored (feedback, deployments). The ids of the last answers that were not captured
are remembered with the reason (`not_captured`), so feedback on one says exactly that.

The capture thread also measures each input's words (the task's `words`, handed over with the
record and never stored) against its model version's training vocabulary, kept once per version
(`vocabulary`), and stores `oov_rate` and `new_words` with the other features. An input's
embedding (the model's own vector of it, for embedding drift) is stored as one float16 row; one
that cannot be (not a flat list of finite numbers, wider than `MAX_EMBEDDING_DIMS`, beyond
float16's range) is logged and left out, never failing the capture.
"""

from __future__ import annotations

import io
import json
import logging
import queue
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Container
from concurrent.futures import Future
from typing import Any

import numpy as np
import sqlite_utils

from appliance.disk import free_bytes, out_of_space
from appliance.monitoring.drift import word_features, words_of
from appliance.monitoring.embeddings import to_blob
from appliance.registry import Registry
from appliance.serving.observer import CaptureRecord
from appliance.settings import Settings

log = logging.getLogger("appliance.monitoring")

BATCH_ROWS = 1000
LINGER_S = 0.02
"""How long the capture thread waits to fill a batch after the first prediction arrives."""
MAX_EMBEDDING_DIMS = 4096
"""Wider embeddings are not stored (8 KiB a prediction at this width)."""
NOT_CAPTURED_KEPT = 10_000
"""How many ids of answered but uncaptured predictions are remembered, with their reason."""


class Capture:
    def __init__(
        self, registry: Registry, settings: Settings,
        vocabulary: Callable[[str], Container[str]] | None = None,
        written: Callable[[list[CaptureRecord]], None] | None = None,
    ):  # fmt: skip
        """`vocabulary(version_id)` gives a version's training words (empty when it has none),
        on the capture thread for each record with words: it must be quick after the first.
        `written(batch)` is told of each batch once it is committed, on the capture thread
        (the review queue keeps inputs there); what it raises is logged, never a drop."""
        self._registry = registry
        self._vocabulary = vocabulary
        self._written = written
        self.enabled = settings.capture_enabled
        self._thumbnail_rate = settings.capture_thumbnail_rate
        self._thumbnail_size = settings.capture_thumbnail_size
        self._queue: queue.Queue[CaptureRecord | Future[None] | None] = queue.Queue(
            maxsize=max(1, settings.capture_queue_size)
        )
        self._counts_lock = threading.Lock()
        self.recorded = 0  # handed over and queued
        self.dropped = 0  # refused because the queue was full, or lost to a failed write
        self.written = 0
        self.paused = 0  # not written because the disk was nearly full
        self._home = settings.home
        self._min_free = settings.capture_min_free_mb * 2**20
        self._pausing = False
        self._not_captured: OrderedDict[str, str] = OrderedDict()
        self._workspace_ids: dict[str, str] = {}
        self._bad_embeddings: set[str | None] = set()  # versions already logged for one
        self._thread = threading.Thread(target=self._serve, name="capture", daemon=True)
        self._thread.start()

    def keep_thumbnail(self) -> bool:
        """Decide, at record time, whether this prediction's input is sampled."""
        return self.enabled and random.random() < self._thumbnail_rate

    def record(self, item: CaptureRecord) -> bool:
        """Queue one prediction; never blocks. False when capture is off or the queue is full."""
        if not self.enabled:
            return False
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            with self._counts_lock:
                self.dropped += 1
            self._forget([item], "the capture queue was full")
            return False
        with self._counts_lock:
            self.recorded += 1
        return True

    def not_captured(self, prediction_id: str) -> str | None:
        """Why prediction `prediction_id` was answered but not captured, if it was recently."""
        with self._counts_lock:
            return self._not_captured.get(prediction_id)

    def _forget(self, batch: list[CaptureRecord], reason: str) -> None:
        with self._counts_lock:
            for item in batch:
                self._not_captured[item.id] = reason
            while len(self._not_captured) > NOT_CAPTURED_KEPT:
                self._not_captured.popitem(last=False)

    def _room(self, batch: list[CaptureRecord]) -> bool:
        """Whether the home's disk has room for captures; pauses (and counts) when not."""
        free = free_bytes(self._home)
        if free >= self._min_free:
            if self._pausing:
                log.warning("capture resumed: %d MB free on the home's disk", free >> 20)
                self._pausing = False
            return True
        if not self._pausing:
            log.warning(
                "capture paused: %d MB free on the home's disk, under capture_min_free_mb (%d)",
                free >> 20, self._min_free >> 20,
            )  # fmt: skip
            self._pausing = True
        with self._counts_lock:
            self.paused += len(batch)
        self._forget(
            batch,
            f"capture was paused: the disk holding the home had {free >> 20} MB free, under "
            f"capture_min_free_mb ({self._min_free >> 20})",
        )
        return False

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def flush(self, timeout: float | None = 30) -> None:
        """Block until everything queued before this call is committed (or dropped)."""
        marker: Future[None] = Future()
        self._queue.put(marker, timeout=timeout)  # a marker may wait for room; records never do
        marker.result(timeout)

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def _serve(self) -> None:
        stopping = False
        while not stopping:
            item: CaptureRecord | Future[None] | None = self._queue.get()
            batch: list[CaptureRecord] = []
            markers: list[Future[None]] = []
            # Linger a moment for company: one transaction per trickle of predictions instead
            # of one per prediction keeps this thread (and the GIL) off the request path. A
            # flush marker or the stop signal ends the wait at once.
            deadline = time.monotonic() + LINGER_S
            while True:
                if item is None:
                    stopping = True
                elif isinstance(item, Future):
                    markers.append(item)
                else:
                    batch.append(item)
                if stopping or len(batch) >= BATCH_ROWS:
                    break
                # After a flush marker, only what is already queued goes with it: no more wait.
                wait = 0.0 if markers else max(0.0, deadline - time.monotonic())
                try:
                    item = self._queue.get(timeout=wait)
                except queue.Empty:
                    break
            if batch:
                self._write(batch)
            for marker in markers:
                marker.set_result(None)

    def _write(self, batch: list[CaptureRecord]) -> None:
        if not self._room(batch):
            return
        try:
            rows = [self._row(item) for item in batch]
            # Captured answers were already sent: a power cut may lose the last batch.
            self._registry.write(lambda db: _insert(db, rows), durable=False)
        except Exception as exc:
            if (problem := out_of_space(exc)) is not None:
                log.error("could not write %d captured predictions: %s", len(batch), problem)
                reason = f"its capture could not be written: no space left ({problem})"
            else:
                log.exception("could not write %d captured predictions; dropped", len(batch))
                reason = f"its capture could not be written ({type(exc).__name__})"
            with self._counts_lock:
                self.dropped += len(batch)
            self._forget(batch, reason)
            return
        with self._counts_lock:
            self.written += len(batch)
        if self._written is not None:
            try:
                self._written(batch)
            except Exception:
                log.exception("the hook of %d written captures failed", len(batch))

    def _row(self, item: CaptureRecord) -> dict[str, Any]:
        row: dict[str, Any] = {
            "id": item.id,
            "workspace_id": self._workspace_id(item.workspace),
            "endpoint": item.endpoint,
            "model_version_id": item.model_version_id,
            "created_at": item.created_at,
            "latency_ms": item.latency_ms,
            "queue_ms": item.queue_ms,
            "inference_ms": item.inference_ms,
            "batch_size": item.batch_size,
            "keywords": item.keywords or "",
            "description": item.description,
            "output": json.dumps(item.output) if item.output is not None else None,
            "features": json.dumps(self._features(item)),
            "confidence": item.confidence,
            "warnings": json.dumps(item.warnings),
            "error": item.error,
            "thumbnail": self._thumbnail(item.image) if item.image is not None else None,
            # Every row has every column: one statement inserts the batch (`_insert`).
            "embedding": self._embedding(item) if item.embedding is not None else None,
        }
        return row

    def _embedding(self, item: CaptureRecord) -> bytes | None:
        """The record's embedding as one float16 row; None (logged once per version) for one
        that is not a flat list of at most MAX_EMBEDDING_DIMS finite numbers in float16's range."""
        try:
            row = np.asarray([item.embedding], dtype=np.float64)
            if row.ndim != 2 or not 1 <= row.shape[1] <= MAX_EMBEDDING_DIMS:
                raise ValueError(
                    f"shape {row.shape[1:]}: not a flat list of 1 to {MAX_EMBEDDING_DIMS} values"
                )
            if not np.isfinite(row).all():
                raise ValueError("it holds NaN or infinite values")
            return to_blob(row)
        except Exception as exc:  # whatever it is, the capture goes on without it
            level = (
                logging.DEBUG if item.model_version_id in self._bad_embeddings else logging.WARNING
            )
            self._bad_embeddings.add(item.model_version_id)
            log.log(level, "prediction %s of version %s: embedding not stored (%s)",
                    item.id, item.model_version_id, exc)  # fmt: skip
            return None

    def _features(self, item: CaptureRecord) -> dict[str, float]:
        """The record's features, with its words' against its version's vocabulary when both
        have words (a new dict: the record's own is the answer's too)."""
        if not item.words or self._vocabulary is None or item.model_version_id is None:
            return item.features
        known = self._vocabulary(item.model_version_id)
        if not known:
            return item.features
        return {**item.features, **word_features(words_of(item.words), known)}

    def _workspace_id(self, name: str) -> str:
        if name not in self._workspace_ids:
            rows = self._registry.query("SELECT id FROM workspaces WHERE name = ?", (name,))
            if not rows:
                raise LookupError(f"workspace '{name}' no longer exists")
            self._workspace_ids[name] = rows[0]["id"]
        return self._workspace_ids[name]

    def _thumbnail(self, image: Any) -> bytes:
        # Re-encoding from pixels keeps nothing of the upload but a small picture: no EXIF,
        # no GPS, no ICC profile, no original file name.
        small = image.copy()
        small.thumbnail((self._thumbnail_size, self._thumbnail_size))
        out = io.BytesIO()
        small.convert("RGB").save(out, format="JPEG", quality=80)
        return out.getvalue()


def _insert(db: sqlite_utils.Database, rows: list[dict[str, Any]]) -> None:
    # One prepared statement for the batch: sqlite-utils' insert_all would look the table up
    # and rebuild its statement for every batch.
    columns = list(rows[0])
    sql = f"INSERT INTO predictions ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    db.conn.executemany(sql, [[row[c] for c in columns] for row in rows])
