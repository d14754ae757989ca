"""The live monitor of a server process: it observes every prediction (capture + Prometheus
counters) and, on its own thread, periodically samples system metrics, evaluates the alert
rules and enforces capture retention."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from appliance.monitoring import alerts
from appliance.monitoring.capture import Capture
from appliance.monitoring.metrics import ServingMetrics, StateCollector
from appliance.monitoring.profiles import Vocabularies
from appliance.monitoring.system import SystemMetrics, SystemSampler
from appliance.review.keeper import Keeper, ReviewCollector
from appliance.services import Services
from appliance.serving.observer import CaptureRecord

log = logging.getLogger("appliance.monitoring")

PRUNE_EVERY_S = 3600


class Monitor:
    def __init__(self, services: Services):
        self.services = services
        settings = services.settings
        self.vocabularies = Vocabularies(services)
        # The review queue keeps uncertain inputs as their captures are written, and low-rated
        # ones while their input is still held (docs/review.md).
        self.review = Keeper(services)
        self.capture = Capture(
            services.registry, settings, self.vocabularies.get, self.review.written
        )
        services.predictions.feedback_listeners.append(self.review.rated)
        self.metrics = ServingMetrics()
        self.system = SystemMetrics(services.registry, settings.system_metrics_max_rows)
        self._sampler = SystemSampler(settings.home)
        self._state: dict[str, Any] = {"drift": {}, "alerts": {}, "system": None}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_prune: float | None = None
        """When the last prune ran (time.monotonic); None: not yet, so the first round prunes
        (monotonic counts from boot: 0.0 here skipped it on a box up for under an hour)."""

    # -- serving's observer ------------------------------------------------------------------

    def keep_thumbnail(self) -> bool:
        return self.capture.keep_thumbnail()

    def observe(self, record: CaptureRecord) -> None:
        self.capture.record(record)
        self.metrics.observe(record)

    def bind(self, queue_depths: Callable[[], Iterable[tuple[str, int]]]) -> None:
        """Export the live gauges; `queue_depths` lists (endpoint, waiting requests)."""
        self.metrics.add_state(StateCollector(self.capture, queue_depths, lambda: self._state))
        self.metrics.add_state(ReviewCollector(self.review))

    # -- periodic work -----------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="monitor", daemon=True)
        self._thread.start()

    def tick(self) -> list[alerts.Transition]:
        """One round: sample the system, evaluate alerts, prune when due."""
        sample = self._sampler.sample()
        self.system.record(sample)
        self._state["system"] = sample
        self.capture.flush()  # judge what has been answered so far, not what is in flight
        transitions = alerts.evaluate(self.services, on_drift=self.record_drift)
        self._state["alerts"] = {
            (row["endpoint"], row["rule"]): int(row["state"] == "firing")
            for row in self.services.registry.query("SELECT endpoint, rule, state FROM alerts")
        }
        if self._last_prune is None or time.monotonic() - self._last_prune > PRUNE_EVERY_S:
            settings = self.services.settings
            self.services.predictions.prune(
                settings.capture_retention_days, settings.capture_max_rows
            )
            self.review.reviews.prune(settings.capture_retention_days)
            self._last_prune = time.monotonic()
        return transitions

    def record_drift(self, endpoint: str, features: Iterable[dict[str, Any]]) -> None:
        """Keep the latest drift scores of an endpoint for /metrics."""
        for feature in features:
            self._state["drift"][(endpoint, feature["feature"])] = feature["psi"]

    def _loop(self) -> None:
        interval = max(1, self.services.settings.monitor_interval_s)
        while not self._stop.wait(interval):
            try:
                self.tick()
            except Exception:  # a bad round must not end monitoring; the next one retries
                log.exception("monitoring round failed")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self.capture.close()
        if self.review.rated in self.services.predictions.feedback_listeners:
            self.services.predictions.feedback_listeners.remove(self.review.rated)
