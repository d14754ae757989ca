"""The server's side of the review loop, fed by monitoring: every captured answer passes here on
the capture thread, after its row is written. An uncertain one is queued for review at once,
and so is an unfamiliar one (its input farther from the training rows than the version's
held-out rows go: drifted, as one request);
any other's decoded input is held a while in memory (the last `review_recent_inputs`, at most
`review_recent_max_bytes`), so that a low rating arriving soon after (`rated`, on the thread
that stored the feedback) can still queue it. A rating that comes later, or to another
process, finds no input and queues nothing: only the server holds recent inputs."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from appliance.review.candidate import Candidate
from appliance.review.store import Reviews
from appliance.services import Services
from appliance.serving.observer import CaptureRecord

log = logging.getLogger("appliance.review")


class Keeper:
    def __init__(self, services: Services):
        settings = services.settings
        self.reviews = Reviews(services)
        self._max_bytes = settings.review_max_bytes
        self._recent_items = settings.review_recent_inputs
        self._recent_bytes = settings.review_recent_max_bytes
        self._low_rating = settings.review_low_rating
        self._recent: OrderedDict[str, Candidate] = OrderedDict()
        self._held = 0  # bytes of what _recent holds
        self._lock = threading.Lock()
        self.queued = 0  # items queued for review
        self.trimmed = 0  # items the disk budget deleted
        self.failed = 0  # inputs that could not be kept (logged)

    @property
    def holding(self) -> int:
        return len(self._recent)

    def written(self, batch: Sequence[CaptureRecord]) -> None:
        """Capture's hook, once a batch of predictions is committed."""
        if self._max_bytes <= 0:
            return
        kept = []
        for record in batch:
            candidate = Candidate.of(record)
            if candidate is None:
                continue
            if "uncertain" in record.warnings:
                kept.append((candidate, "uncertain"))
            elif record.unfamiliar:
                kept.append((candidate, "unfamiliar"))
            else:
                self._hold(candidate)
        self._keep(kept)

    def rated(self, feedback: Mapping[str, Any]) -> None:
        """The feedback hook: a low rating (or a thumb down) queues its prediction while its
        input is still held."""
        rating, thumb = feedback.get("rating"), feedback.get("thumb")
        if not ((rating is not None and rating <= self._low_rating) or thumb == "down"):
            return
        with self._lock:
            candidate = self._recent.pop(str(feedback["prediction_id"]), None)
            if candidate is not None:
                self._held -= candidate.size
        if candidate is not None:
            self._keep([(candidate, "low_rating")])

    def _hold(self, candidate: Candidate) -> None:
        size = candidate.size
        if self._recent_items <= 0 or size > self._recent_bytes:
            return
        with self._lock:
            self._recent[candidate.prediction_id] = candidate
            self._held += size
            while len(self._recent) > self._recent_items or self._held > self._recent_bytes:
                _, oldest = self._recent.popitem(last=False)
                self._held -= oldest.size

    def _keep(self, candidates: list[tuple[Candidate, str]]) -> None:
        if not candidates:
            return
        try:
            queued, trimmed = self.reviews.keep(candidates, self._max_bytes)
        except Exception:  # the predictions are captured all the same; only their review is lost
            log.exception("could not keep %d predictions for review", len(candidates))
            with self._lock:
                self.failed += len(candidates)
            return
        with self._lock:
            self.queued += queued
            self.trimmed += trimmed


class ReviewCollector(Collector):
    """The review queue's counters, read at scrape time."""

    def __init__(self, keeper: Keeper):
        self._keeper = keeper

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        keeper = self._keeper
        yield CounterMetricFamily(
            "appliance_review_queued",
            "Answers queued for review (uncertain, unfamiliar or rated low)",
            value=keeper.queued,
        )  # fmt: skip
        yield CounterMetricFamily(
            "appliance_review_trimmed", "Review items deleted to keep within review_max_bytes",
            value=keeper.trimmed,
        )  # fmt: skip
        yield CounterMetricFamily(
            "appliance_review_failed", "Inputs that could not be kept for review",
            value=keeper.failed,
        )  # fmt: skip
        yield GaugeMetricFamily(
            "appliance_review_recent_inputs", "Recent inputs held in memory for a low rating",
            value=keeper.holding,
        )  # fmt: skip
