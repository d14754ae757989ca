"""A bounded soak of `appliance serve` as a real process: bursts of mixed traffic (predict,
feedback, /metrics scrapes, a hot swap per burst) on fresh connections, each followed by a pause
long enough for the server's thread pool to retire its idle workers (thread churn: what leaked a
registry connection per dead thread). Asserts no 5xx, a flat count of file handles, bounded RSS
growth, and every acknowledged feedback present after a SIGKILL.

`APPLIANCE_SOAK_CYCLES` makes it longer (3 by default, about a minute)."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import psutil
from crash_harness import integrity, start_server
from serving_harness import free_port

from appliance.datasets.synthetic import generate
from appliance.services import Services

CYCLES = int(os.environ.get("APPLIANCE_SOAK_CYCLES", "3"))
CLIENTS = 6
BURST_S = 4.0
IDLE_S = 11.0
"""anyio retires a worker thread after 10 s idle: each pause replaces the pool's threads."""
RSS_GROWTH_MB = 150


class Burst:
    """CLIENTS threads that predict and rate on their own new connection, one scraper, and one
    hot swap, for BURST_S seconds. Statuses >= 500 and transport errors are kept as errors."""

    def __init__(self, base: str, images: list[bytes], swap_to: int):
        self.base, self.images, self.swap_to = base, images, swap_to
        self.acknowledged: list[tuple[int, str, int]] = []
        self.errors: list[str] = []
        self.requests = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def run(self) -> None:
        threads = [threading.Thread(target=self._client, args=(n,)) for n in range(CLIENTS)]
        threads += [threading.Thread(target=self._scrape), threading.Thread(target=self._swap)]
        for thread in threads:
            thread.start()
        time.sleep(BURST_S)
        self._stop.set()
        for thread in threads:
            thread.join(60)

    def _count(self, answer: httpx.Response, what: str) -> bool:
        with self._lock:
            self.requests += 1
            if answer.status_code >= 500:
                self.errors.append(f"{what} answered {answer.status_code}: {answer.text[:200]}")
                return False
        return True

    def _client(self, n: int) -> None:
        i = n
        with httpx.Client(base_url=self.base, timeout=30) as client:
            while not self._stop.is_set():
                i += CLIENTS
                try:
                    answer = client.post(
                        "/v1/endpoints/captions/predict",
                        content=self.images[i % len(self.images)],
                        headers={"content-type": "image/png"},
                    )
                    if not self._count(answer, "predict") or answer.status_code != 200:
                        continue
                    prediction = answer.json()["id"]
                    rating = 1 + i % 5
                    rated = client.post(
                        f"/v1/predictions/{prediction}/feedback", json={"rating": rating}
                    )
                    if self._count(rated, "feedback") and rated.status_code == 201:
                        with self._lock:
                            self.acknowledged.append((rated.json()["id"], prediction, rating))
                except httpx.TransportError as exc:
                    with self._lock:
                        self.errors.append(f"transport: {exc!r}")

    def _scrape(self) -> None:
        with httpx.Client(base_url=self.base, timeout=30) as client:
            while not self._stop.is_set():
                self._count(client.get("/metrics"), "metrics")
                time.sleep(0.2)

    def _swap(self) -> None:
        time.sleep(BURST_S / 3)
        body = {"workspace": "ads", "endpoint": "captions", "model": "colour@1",
                "max_batch_size": self.swap_to}  # fmt: skip
        answer = httpx.post(f"{self.base}/v1/deployments", json=body, timeout=60)
        if self._count(answer, "deploy") and answer.status_code != 201:
            with self._lock:
                self.errors.append(f"deploy answered {answer.status_code}: {answer.text[:200]}")


def test_soak_keeps_handles_flat_memory_bounded_and_feedback_durable(
    deployed: Path, tmp_path: Path
) -> None:
    images = [p.read_bytes() for p in sorted(generate(tmp_path / "t", count=8, seed=5).path.glob("*.png"))]  # fmt: skip
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(deployed, port, tmp_path / "serve.log")
    process = psutil.Process(server.pid)
    acknowledged: list[tuple[int, str, int]] = []
    handles, rss_mb, requests = [], [], 0
    try:
        for cycle in range(CYCLES):
            burst = Burst(base, images, swap_to=4 if cycle % 2 == 0 else 8)
            burst.run()
            assert not burst.errors, burst.errors[:5]
            acknowledged += burst.acknowledged
            requests += burst.requests
            time.sleep(IDLE_S)  # the idle workers retire; new ones come with the next burst
            handles.append(process.num_fds())
            rss_mb.append(process.memory_info().rss / 2**20)
        os.kill(server.pid, signal.SIGKILL)
        assert server.wait(30) == -signal.SIGKILL
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(30)
    assert requests >= 50 * CYCLES, f"too little load to mean anything: {requests}"
    # The first cycle warms up (the swap's second instance, caches); after it, handles stay put.
    assert max(handles[1:]) <= handles[0] + 4, handles
    assert rss_mb[-1] - rss_mb[0] < RSS_GROWTH_MB, rss_mb

    assert integrity(deployed / "registry.db") == "ok"
    with Services.open(home=deployed) as services:
        stored = {
            r["id"]: (r["prediction_id"], r["rating"])
            for r in services.registry.query("SELECT id, prediction_id, rating FROM feedback")
        }
    missing = [a for a in acknowledged if stored.get(a[0]) != (a[1], a[2])]
    assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged feedback lost"
