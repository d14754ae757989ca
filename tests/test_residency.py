"""Memory-aware residency over real HTTP (appliance/serving/residency.py): an idle endpoint is
unloaded after its keep-alive and loaded again by its next request, whose answer says it was
cold; a deploy that does not fit the budget is refused with the figures while the old version
keeps serving; room is made by unloading the least recently used idle other endpoint.

Two BERT text classifiers: the 1-layer tiny one (well under 1 MB of weights) and a 4-layer one
of about 50 MB (hidden 512), so that a budget of 90 MB holds one of those but not two."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from serving_harness import running_server, wait_ready

from appliance.models.intake import register_folder
from appliance.services import Services
from appliance.serving.options import DeployOptions

AD = {"text": "Red striped mug, barely used, dishwasher safe."}
BUDGET_MB = 90


@pytest.fixture(scope="module")
def big_model(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Path:
    """The tiny classifier's tokenizer and labels with 4 layers of hidden size 512 (~50 MB)."""
    from transformers import BertConfig, BertForSequenceClassification

    folder = tmp_path_factory.mktemp("big") / "bert-cls-50mb"
    shutil.copytree(tiny_model, folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(
        hidden_size=512, num_hidden_layers=4, num_attention_heads=8, intermediate_size=2048
    )
    for stale in folder.glob("*.safetensors"):
        stale.unlink()
    BertForSequenceClassification(BertConfig(**config)).save_pretrained(folder)
    return folder


def _home(root: Path, tiny_model: Path, big_model: Path) -> Path:
    """A home with tiny@1, big@1 and big@2 in workspace `ads` (registered without the
    load-and-predict check's child process: these folders are known to serve)."""
    home = root / "home"
    with Services.open(home=home) as services:
        services.workspaces.create("ads")
        register_folder(services, "ads", "tiny", tiny_model, check=False)
        for _ in range(2):
            register_folder(services, "ads", "big", big_model, check=False)
    return home


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, big_model: Path) -> Path:
    return _home(tmp_path_factory.mktemp("residency"), tiny_model, big_model)


def _deploy(http: httpx.Client, endpoint: str, model: str, **options: Any) -> httpx.Response:
    body = {"workspace": "ads", "endpoint": endpoint, "model": model, **options}
    return http.post("/v1/deployments", json=body)


def _shown(http: httpx.Client) -> dict[str, dict[str, Any]]:
    answer = http.get("/v1/deployments")
    assert answer.status_code == 200, answer.text
    return {d["endpoint"]: d for d in answer.json()}


def _wait_resident(http: httpx.Client, endpoint: str, state: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while (seen := _shown(http)[endpoint]["resident"]) != state:
        assert time.monotonic() < deadline, f"{endpoint} stayed {seen}, never {state}"
        time.sleep(0.1)


def _predict(http: httpx.Client, endpoint: str) -> httpx.Response:
    return http.post(f"/v1/endpoints/{endpoint}/predict", json=AD)


def _infer_threads(endpoint: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"infer-{endpoint}" and t.is_alive()]


def test_idle_endpoint_is_unloaded_and_its_next_requests_load_it(home: Path) -> None:
    with Services.open(home=home) as services, running_server(services, restore=False) as http:
        wait_ready(http)
        answer = _deploy(http, "idle", "tiny@1", keep_alive_s=1)
        assert answer.status_code == 201, answer.text
        shown = answer.json()
        assert shown["resident"] == "loaded" and shown["keep_alive_s"] == 1
        assert shown["memory_mb"] > 0 and shown["memory_source"] in ("measured", "estimated")
        assert shown["memory_budget_mb"] > shown["memory_mb"]
        warm = _predict(http, "idle")
        assert warm.status_code == 200 and "cold_start_ms" not in warm.json()

        _wait_resident(http, "idle", "cold")
        assert not _infer_threads("idle")  # closed: its thread ended with its model
        assert _shown(http)["idle"]["loaded"] is False

        with ThreadPoolExecutor(6) as pool:  # all arrive while it is cold: one load for all
            answers = list(pool.map(lambda _: _predict(http, "idle"), range(6)))
        assert [a.status_code for a in answers] == [200] * 6, [a.text for a in answers]
        bodies = [a.json() for a in answers]
        cold = [b for b in bodies if "cold_start_ms" in b]
        assert cold and all(0 < b["cold_start_ms"] <= b["latency_ms"] for b in cold)
        assert {b["version"] for b in bodies} == {1}
        assert _shown(http)["idle"]["resident"] == "loaded"
        assert len(_infer_threads("idle")) == 1
        again = _predict(http, "idle")
        assert again.status_code == 200 and "cold_start_ms" not in again.json()


def test_a_deploy_that_does_not_fit_is_refused_and_room_is_made_lru(home: Path) -> None:
    with (
        Services.open(home=home, memory_budget_mb=BUDGET_MB) as services,
        running_server(services, restore=False) as http,
    ):
        wait_ready(http)
        assert _deploy(http, "small", "tiny@1").status_code == 201
        answer = _deploy(http, "router", "big@1")
        assert answer.status_code == 201, answer.text
        shown = _shown(http)
        big_mb, small_mb = shown["router"]["memory_mb"], shown["small"]["memory_mb"]
        assert shown["router"]["memory_budget_mb"] == BUDGET_MB
        assert BUDGET_MB / 2 < big_mb <= BUDGET_MB - small_mb, shown
        # The load's RSS growth is recorded with its event, for the next fit check to prefer.
        (event,) = services.registry.query(
            "SELECT detail FROM events WHERE kind = 'deployed' AND subject = 'router'"
        )
        assert json.loads(event["detail"])["resident_mb"] > 0

        # The swap would hold big@1 and big@2 at once: refused, and nothing unloaded for it.
        stop, served = threading.Event(), []

        def traffic() -> None:
            with httpx.Client(base_url=str(http.base_url), timeout=60) as client:
                while not stop.is_set():
                    got = _predict(client, "router")
                    served.append((got.status_code, got.json().get("version")))

        worker = threading.Thread(target=traffic)
        worker.start()
        try:
            while len(served) < 3:
                time.sleep(0.01)
            refused = _deploy(http, "router", "big@2")
            answered = len(served)
            while len(served) < answered + 3:
                time.sleep(0.01)
        finally:
            stop.set()
            worker.join()
        assert refused.status_code == 507, refused.text
        message = refused.json()["error"]
        assert "big@2 at 'router' needs " in message and f"budget is {BUDGET_MB} MB" in message
        assert f"router {big_mb:g} MB (the version it replaces" in message
        assert f"small {small_mb:g} MB" in message and "nothing was unloaded" in message
        assert served and set(served) == {(200, 1)}, served[:5]
        shown = _shown(http)
        assert shown["router"]["version"] == 1 and shown["router"]["resident"] == "loaded"
        assert shown["small"]["resident"] == "loaded"
        assert _predict(http, "router").json()["version"] == 1

        # Room for another big one: the least recently used idle endpoint (router, not small,
        # which answers last) is unloaded, and stays deployed, cold.
        assert _predict(http, "small").status_code == 200
        answer = _deploy(http, "second", "big@2")
        assert answer.status_code == 201, answer.text
        shown = _shown(http)
        assert shown["router"]["resident"] == "cold" and shown["small"]["resident"] == "loaded"
        assert shown["second"]["resident"] == "loaded"
        assert not _infer_threads("router")

        # Its next request loads it again, making room the same way (second is now the LRU).
        assert _predict(http, "small").status_code == 200
        back = _predict(http, "router")
        assert back.status_code == 200, back.text
        assert back.json()["version"] == 1 and back.json()["cold_start_ms"] > 0
        shown = _shown(http)
        assert shown["router"]["resident"] == "loaded" and shown["second"]["resident"] == "cold"


def test_restore_leaves_what_does_not_fit_cold(
    tmp_path: Path, tiny_model: Path, big_model: Path
) -> None:
    home = _home(tmp_path, tiny_model, big_model)
    with Services.open(home=home, memory_budget_mb=BUDGET_MB) as services:
        for endpoint, number in (("one", 1), ("two", 2)):  # recorded, for the start to load
            version = services.models.get("ads", f"big@{number}")
            services.deployments.record("ads", endpoint, version, DeployOptions())
        with running_server(services) as http:
            wait_ready(http)
            shown = _shown(http)
            assert (shown["one"]["resident"], shown["two"]["resident"]) == ("loaded", "cold")
            answer = _predict(http, "two")
            assert answer.status_code == 200 and answer.json()["cold_start_ms"] > 0
            shown = _shown(http)  # room made: one, idle, unloaded
            assert (shown["one"]["resident"], shown["two"]["resident"]) == ("cold", "loaded")


@pytest.fixture(autouse=True)
def _no_leftover_threads() -> Iterator[None]:
    yield
    assert not [t for t in threading.enumerate() if t.name.startswith("reload-")]


def test_a_batch_job_on_a_cold_endpoint_waits_for_its_load(home: Path, tmp_path: Path) -> None:
    """The scheduler's batch_predict submits from a worker thread: a cold endpoint is loaded
    for it and waited for (it once got 503 ModelLoading)."""
    from appliance.scheduler.runner import run_job
    from appliance.serving.options import DeployOptions
    from appliance.serving.service import Serving

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for n, text in enumerate(("a red mug", "two blue shoes")):
        (inbox / f"{n}.txt").write_text(text)
    with Services.open(home=home) as services:
        serving = Serving(services)
        try:
            serving.deploy("ads", "batchy", "tiny@1", DeployOptions(device="cpu", keep_alive_s=1))
            deadline = time.monotonic() + 15
            while serving.residency.state(("ads", "batchy")) != "cold":
                assert time.monotonic() < deadline, "never went cold"
                time.sleep(0.1)
            job = services.jobs.add(
                "ads", "describe", "batch_predict", {"interval_s": 86_400}, target="batchy",
                params={"source": str(inbox), "output": str(tmp_path / "out")},
            )  # fmt: skip
            outcome = run_job(services, job, "manual", serving=serving)
            assert outcome["status"] == "succeeded", outcome["detail"]
            assert outcome["detail"]["described"] == 2
            assert serving.residency.state(("ads", "batchy")) == "loaded"
        finally:
            serving.close()
