"""The post-deploy watch judges the new version on its own answers: requests the old version
finished during the swap (slow ones included) do not count against it."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

from appliance.monitoring.capture import Capture
from appliance.registry import utcnow
from appliance.scheduler import runner
from appliance.services import Services
from appliance.serving.observer import CaptureRecord


def _record(n: int, version: str, latency_ms: float, confidence: float = 0.99) -> CaptureRecord:
    return CaptureRecord(
        id=f"{version}-{n}-{time.monotonic_ns()}", workspace="ads", endpoint="captions",
        model_version_id=version, created_at=utcnow(), latency_ms=latency_ms,
        description="red mug", confidence=confidence, features={"width": 64.0},
    )  # fmt: skip


def _watch(services: Services, old_after_swap_ms: float, new_ms: float) -> dict[str, Any]:
    capture = Capture(services.registry, services.settings)
    for n in range(10):
        capture.record(_record(n, "v-old", 50))
    capture.flush()
    time.sleep(0.01)
    since = utcnow()
    for n in range(6):  # in flight on the old version when the traffic switched
        capture.record(_record(n, "v-old", old_after_swap_ms))
        capture.record(_record(n, "v-new", new_ms))
    capture.flush()
    capture.close()
    ctx = SimpleNamespace(services=services, should_stop=lambda: False)
    return runner._watch(ctx, "ads", "captions", "v-new", since, watch_s=0.6)  # type: ignore[arg-type]


def test_slow_answers_of_the_old_version_during_the_swap_do_not_fail_the_new_one(
    services: Services,
) -> None:
    services.workspaces.create("ads")
    verdict = _watch(services, old_after_swap_ms=400, new_ms=50)
    assert verdict["failed"] is False and verdict["predictions"] == 6


def test_a_slow_new_version_still_fails_its_watch(services: Services) -> None:
    services.workspaces.create("ads")
    verdict = _watch(services, old_after_swap_ms=50, new_ms=400)
    assert verdict["failed"] is True
    assert verdict["reasons"] == ["p95 latency 400 ms (before: 50 ms)"]
