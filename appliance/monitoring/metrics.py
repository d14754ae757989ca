"""Prometheus `/metrics`: counters and histograms updated as predictions are answered, plus
gauges read at scrape time (queue depths, dropped captures, drift scores, firing alerts, system
metrics). Each app has its own CollectorRegistry, so several servers in one process (tests) never
share numbers."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from appliance.monitoring.capture import Capture
from appliance.serving.observer import CaptureRecord

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
SYSTEM_GAUGES = {
    "process_cpu_percent": "CPU use of the appliance process (100 = one core)",
    "machine_cpu_percent": "CPU use of the whole machine",
    "process_rss_bytes": "Resident memory of the appliance process",
    "machine_memory_percent": "Memory in use on the machine",
    "disk_used_percent": "Disk use of the filesystem holding the home",
    "disk_free_bytes": "Free disk space on the filesystem holding the home",
    "open_files": "Files open by the appliance process",
    "threads": "Threads of the appliance process",
    "gpu_memory_bytes": "GPU memory allocated by torch",
    "gpu_utilization_percent": "GPU utilisation",
}


class ServingMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.predictions = Counter(
            "appliance_predictions", "Predictions answered, by endpoint, version and outcome",
            ["endpoint", "model", "version", "outcome"], registry=self.registry,
        )  # fmt: skip
        self.rejected = Counter(
            "appliance_rejected_requests", "Requests refused before inference, by HTTP status",
            ["endpoint", "status"], registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "appliance_prediction_latency_seconds", "Time from request to answer",
            ["endpoint"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.queue_wait = Histogram(
            "appliance_queue_wait_seconds", "Time a prediction waited for its batch",
            ["endpoint"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.inference = Histogram(
            "appliance_inference_seconds", "Time of the forward pass that answered it",
            ["endpoint"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.batch_size = Histogram(
            "appliance_batch_size", "Images per forward pass",
            ["endpoint"], buckets=BATCH_BUCKETS, registry=self.registry,
        )  # fmt: skip

    def observe(self, record: CaptureRecord) -> None:
        outcome = "error" if record.error else "ok"
        self.predictions.labels(record.endpoint, record.model, str(record.version), outcome).inc()
        if record.error:
            return
        self.latency.labels(record.endpoint).observe(record.latency_ms / 1000)
        if record.queue_ms is not None and record.inference_ms is not None:
            self.queue_wait.labels(record.endpoint).observe(record.queue_ms / 1000)
            self.inference.labels(record.endpoint).observe(record.inference_ms / 1000)
        if record.batch_size:
            self.batch_size.labels(record.endpoint).observe(record.batch_size)

    def reject(self, endpoint: str, status: int) -> None:
        self.rejected.labels(endpoint, str(status)).inc()

    def add_state(self, collector: Collector) -> None:
        self.registry.register(collector)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class StateCollector(Collector):
    """Gauges read at scrape time from the live parts of the server."""

    def __init__(
        self,
        capture: Capture,
        queue_depths: Callable[[], Iterable[tuple[str, int]]],
        state: Callable[[], dict[str, Any]],
    ):
        self._capture = capture
        self._queue_depths = queue_depths
        self._state = state

    def describe(self) -> Iterator[Metric]:
        return iter(())  # describe lazily: the values come from live objects at scrape time

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "appliance_batch_queue_depth", "Requests waiting for a batch", labels=["endpoint"]
        )
        for endpoint, value in self._queue_depths():
            depth.add_metric([endpoint], value)
        yield depth
        yield GaugeMetricFamily(
            "appliance_capture_queue_depth", "Predictions waiting to be written",
            value=self._capture.depth,
        )  # fmt: skip
        yield CounterMetricFamily(
            "appliance_captures_dropped", "Predictions not captured (queue full or write failed)",
            value=self._capture.dropped,
        )  # fmt: skip
        yield CounterMetricFamily(
            "appliance_captures_paused",
            "Predictions not captured because the home's disk was nearly full",
            value=self._capture.paused,
        )  # fmt: skip
        yield CounterMetricFamily(
            "appliance_captures_written", "Predictions written to the registry",
            value=self._capture.written,
        )  # fmt: skip
        state = self._state()
        psi = GaugeMetricFamily(
            "appliance_drift_psi", "Population stability index of an input feature",
            labels=["endpoint", "feature"],
        )  # fmt: skip
        for (endpoint, feature), value in sorted(state.get("drift", {}).items()):
            psi.add_metric([endpoint, feature], value)
        yield psi
        firing = GaugeMetricFamily(
            "appliance_alert_firing", "1 while an alert rule fires", labels=["endpoint", "rule"]
        )
        for (endpoint, rule), value in sorted(state.get("alerts", {}).items()):
            firing.add_metric([endpoint, rule], value)
        yield firing
        system = state.get("system") or {}
        for name, help_text in SYSTEM_GAUGES.items():
            if system.get(name) is not None:
                yield GaugeMetricFamily(f"appliance_{name}", help_text, value=system[name])
