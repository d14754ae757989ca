"""`kill -9` of `appliance serve` while four clients predict and rate: nothing acknowledged is
lost, the registry stays sound, and a restart serves the same deployment again."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
from crash_harness import integrity, start_server, stop_server
from serving_harness import free_port

from appliance.datasets.synthetic import generate
from appliance.services import Services

CLIENTS = 4
LOAD_SECONDS = 3.0


class Load:
    """Clients that each loop: predict one image, rate the answer. Every feedback answered 201
    is kept as (feedback id, prediction id, rating); a dropped connection ends the client."""

    def __init__(self, base: str, images: list[bytes]):
        self.base = base
        self.images = images
        self.acknowledged: list[tuple[int, str, int]] = []
        self.predicted = 0
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._client, args=(n,), name=f"load-{n}", daemon=True)
            for n in range(CLIENTS)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _client(self, n: int) -> None:
        i = n
        with httpx.Client(base_url=self.base, timeout=10) as client:
            while not self._stop.is_set():
                i += CLIENTS
                rating = 1 + i % 5
                try:
                    answer = client.post(
                        "/v1/endpoints/captions/predict",
                        content=self.images[i % len(self.images)],
                        headers={"content-type": "image/png"},
                    )
                    if answer.status_code != 200:
                        self._error(f"predict answered {answer.status_code}: {answer.text}")
                        continue
                    prediction_id = answer.json()["id"]
                    with self._lock:
                        self.predicted += 1
                    rated = client.post(
                        f"/v1/predictions/{prediction_id}/feedback", json={"rating": rating}
                    )
                except httpx.TransportError:
                    return  # the server is gone
                if rated.status_code != 201:
                    self._error(f"feedback answered {rated.status_code}: {rated.text}")
                    continue
                with self._lock:
                    self.acknowledged.append((rated.json()["id"], prediction_id, rating))

    def _error(self, message: str) -> None:
        with self._lock:
            self.errors.append(message)


def test_kill_9_under_load_loses_nothing_acknowledged(deployed: Path, tmp_path: Path) -> None:
    images = [p.read_bytes() for p in sorted(generate(tmp_path / "t", count=8, seed=5).path.glob("*.png"))]  # fmt: skip
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    server = start_server(deployed, port, log)
    load = Load(base, images)
    try:
        load.start()
        time.sleep(LOAD_SECONDS)
        os.kill(server.pid, signal.SIGKILL)  # mid-load: no shutdown, no flush
        assert server.wait(30) == -signal.SIGKILL
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(30)
        load.stop()
    assert not load.errors, load.errors[:5]
    assert len(load.acknowledged) >= 10, f"too little load to mean anything: {load.predicted}"

    registry = deployed / "registry.db"
    assert integrity(registry) == "ok"
    with Services.open(home=deployed) as services:
        stored = {
            r["id"]: (r["prediction_id"], r["rating"])
            for r in services.registry.query("SELECT id, prediction_id, rating FROM feedback")
        }
        orphans = services.registry.query(
            "SELECT f.id FROM feedback f LEFT JOIN predictions p ON p.id = f.prediction_id"
            " WHERE p.id IS NULL"
        )
    missing = [a for a in load.acknowledged if stored.get(a[0]) != (a[1], a[2])]
    assert not missing, f"{len(missing)} of {len(load.acknowledged)} acknowledged feedback lost"
    assert not orphans, f"feedback on predictions that do not exist: {orphans}"

    server = start_server(deployed, port, log)  # restores the recorded deployment first
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            assert client.get("/v2/health/ready").status_code == 200
            assert client.get("/v2/models/captions").json()["versions"] == ["1"]
            answer = client.post(
                "/v1/endpoints/captions/predict", content=images[0],
                headers={"content-type": "image/png"},
            )  # fmt: skip
            assert answer.status_code == 200, answer.text
            assert answer.json()["description"]
            rated = client.post(
                f"/v1/predictions/{answer.json()['id']}/feedback", json={"rating": 5}
            )
            assert rated.status_code == 201, rated.text
    finally:
        assert stop_server(server) in (0, -signal.SIGTERM)
    assert integrity(registry) == "ok"
    assert "Traceback" not in log.read_text(), log.read_text()
