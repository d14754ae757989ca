"""Model instances over real HTTP: two process instances (spawned workers fed through shared
memory) answer under concurrent load and both take work; a worker killed with SIGKILL mid-load
costs at most its in-flight requests (503 with Retry-After, never a hang), is restarted, answers
again, and the crash is an event; hot swaps under load between process and thread instances fail
no request; no shared-memory block of ours outlives the server."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from serving_harness import running_server, wait_ready

from appliance.cli import cli
from appliance.services import Services
from appliance.serving.instances.shm import PREFIX, Arena, ArenaReader
from appliance.serving.options import DeployOptions
from appliance.tasks import PredictInput

PREDICT = "/v1/endpoints/ads/predict"
TEXTS = ["a red bicycle, barely used", "sofa for sale, blue, two seats", "winter tyres, 16 inch"]
DEPLOY = {"workspace": "shop", "endpoint": "ads", "model": "cls@1", "max_batch_size": 8}


def ours() -> list[str]:
    """Our shared-memory blocks: the arenas of this process's process instances."""
    return sorted(n for n in os.listdir("/dev/shm") if n.startswith(f"{PREFIX}{os.getpid()}-"))


def workers() -> set[int]:
    """The pids of this process's spawned instance workers (not the resource tracker)."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid() and b"spawn_main" in cmdline:
            found.add(int(entry))
    return found


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


class Load:
    """`clients` threads, each with its own connection, posting predictions until stopped;
    every answer (or transport error: a hang shows as a timeout) is kept."""

    def __init__(self, base: str, clients: int = 6):
        self.answers: list[tuple[int, str | None]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(base, n)) for n in range(clients)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def _run(self, base: str, number: int) -> None:
        with httpx.Client(base_url=base, timeout=20) as client:
            sent = number
            while not self._stop.is_set():
                try:
                    answer = client.post(PREDICT, json={"text": TEXTS[sent % len(TEXTS)]})
                except httpx.HTTPError as exc:
                    with self._lock:
                        self.errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                with self._lock:
                    self.answers.append((answer.status_code, answer.headers.get("retry-after")))
                sent += 1

    def count(self, status: int) -> int:
        with self._lock:
            return sum(1 for s, _ in self.answers if s == status)


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, tiny_model: Path
) -> Iterator[tuple[Services, httpx.Client]]:
    """A server whose endpoint `ads` (a tiny BERT) is recorded as deployed with two process
    instances, so that the server starts them as it restores its deployments."""
    home = tmp_path_factory.mktemp("instances") / "home"
    env = {"APPLIANCE_HOME": str(home)}
    for args in (
        ["workspace", "create", "shop"],
        ["model", "register", "shop", "cls", str(tiny_model)],
    ):
        result = CliRunner().invoke(cli, args, env=env)
        assert result.exit_code == 0, result.output
    with Services.open(home=home) as services:
        version = services.models.get("shop", "cls@1")
        options = DeployOptions(max_batch_size=8, instances=2, instance_kind="process")
        services.deployments.record("shop", "ads", version, options)
        with running_server(services) as http:
            wait_ready(http)
            yield services, http
        assert not workers(), "a worker outlived the server"
        assert not ours(), f"shared memory left behind: {ours()}"


def events(services: Services, kind: str) -> list[dict]:
    ws = services.workspaces.get("shop")
    return [e for e in services.events.list(ws["id"]) if e["kind"] == kind]


def test_two_process_instances_share_load_and_survive_a_sigkill(served) -> None:
    services, http = served
    pids = workers()
    assert len(pids) == 2
    assert len(ours()) == 2  # one arena per instance, not one per batch
    before = {pid: cpu_ticks(pid) for pid in pids}
    with Load(str(http.base_url)) as load:
        time.sleep(3)
    assert load.errors == [] and load.count(200) == len(load.answers) > 20
    assert all(cpu_ticks(pid) > before[pid] + 5 for pid in pids), "an instance took no work"

    victim = min(pids)
    with Load(str(http.base_url)) as load:
        time.sleep(1)
        os.kill(victim, signal.SIGKILL)
        deadline = time.time() + 40
        while not events(services, "instance_restarted"):  # spawned, loaded and warm
            assert time.time() < deadline, "the killed instance was not restarted"
            time.sleep(0.2)
        restarted = (workers() - pids).pop()
        served_before = load.count(200)
        time.sleep(2)
        ticks = cpu_ticks(restarted)
        time.sleep(2)
    assert load.errors == [], load.errors[:3]  # no hung request, no dropped connection
    statuses = {status for status, _ in load.answers}
    assert statuses <= {200, 503}, statuses
    assert all(retry == "2" for status, retry in load.answers if status == 503)
    assert load.count(503) <= 8, "more than the killed instance's batch failed"
    assert load.count(200) > served_before
    assert cpu_ticks(restarted) > ticks, "the restarted instance takes no work"
    crashed = events(services, "instance_crashed")
    assert [e["detail"]["pid"] for e in crashed] == [victim]
    assert crashed[0]["detail"]["exitcode"] == -signal.SIGKILL
    assert [e["detail"]["pid"] for e in events(services, "instance_restarted")] == [restarted]
    assert len(ours()) == 2
    assert http.get("/v2/models/ads/ready").status_code == 200


def test_hot_swaps_under_load_between_instance_kinds_fail_no_request(served) -> None:
    services, http = served
    old = workers()
    with Load(str(http.base_url)) as load:
        time.sleep(0.5)
        swap = http.post(
            "/v1/deployments", json={**DEPLOY, "instances": 2, "instance_kind": "thread"}
        )
        assert swap.status_code == 201, swap.text
        assert swap.json()["torch_threads"] == max(1, (os.cpu_count() or 1) // 2)
        time.sleep(1)
        assert not workers() & old, "the swapped-out workers still run"
        assert ours() == []
        swap = http.post(
            "/v1/deployments", json={**DEPLOY, "instances": 2, "instance_kind": "process"}
        )
        assert swap.status_code == 201, swap.text
        time.sleep(1)
    assert load.errors == [], load.errors[:3]
    assert {status for status, _ in load.answers} == {200}
    assert len(load.answers) > 20
    assert len(workers()) == 2 and not workers() & old
    assert events(services, "instance_crashed") == events(services, "instance_crashed")[:1]


def test_decoded_inputs_cross_shared_memory_as_they_were() -> None:
    image = Image.fromarray(np.arange(48 * 32 * 3, dtype=np.uint8).reshape(48, 32, 3))
    grey = Image.new("L", (5, 7), 9)
    vector = np.linspace(0, 1, 1000, dtype=np.float32)
    big = np.ones((1200, 1200), dtype=np.float32)  # more than the arena holds: it grows
    import torch

    tensor = torch.arange(12, dtype=torch.int64).reshape(3, 4)
    inputs = [
        PredictInput({"image": image, "keywords": "red"}, {"width": 32.0}),
        PredictInput({"image": grey, "vector": vector, "tensor": tensor, "big": big}),
    ]
    others = ours()  # a served module's arenas
    arena, reader = Arena(), ArenaReader()
    try:
        batch = arena.pack(inputs)
        assert batch.values[0]["keywords"] == "red"  # plain values ride in the descriptor
        back = reader.read(batch)
        arena.pack([PredictInput({"image": grey})])  # the next batch overwrites the arena
        assert len(ours()) == len(others) + 1  # grown by replacement, the old block unlinked
    finally:
        reader.close()
        arena.close()
    assert ours() == others
    assert np.array_equal(np.asarray(back[0].values["image"]), np.asarray(image))
    assert back[0].values["image"].mode == "RGB" and back[0].features == {"width": 32.0}
    assert back[1].values["image"].mode == "L"
    assert np.array_equal(np.asarray(back[1].values["image"]), np.asarray(grey))
    assert np.array_equal(back[1].values["vector"], vector)
    assert torch.equal(back[1].values["tensor"], tensor)
    assert np.array_equal(back[1].values["big"], big)
