"""Vocabulary drift of a text classifier over real HTTP: generated ads versioned, the
text-classifier recipe trained in a tracked run, its profile keeping the training vocabulary and
held-out word features; two endpoints of the version, one fed fresh ads of the trained
categories, one fed car ads (a category the training data never had). Each capture carries its
`oov_rate` and `new_words`; drift flags them for the cars only. The texts are never stored."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from serving_harness import running_server, wait_ready

from appliance.datasets.ad_text import generate
from appliance.monitoring.profiles import Vocabularies, ensure_profile
from appliance.runs.launcher import start_run
from appliance.services import Services

STREAM = 60  # over drift_min_samples (30)


def ads(out: Path, count: int, seed: int, categories: list[str] | None = None) -> list[dict]:
    path = generate(out, count=count, seed=seed, categories=categories).path
    lines = (path / "metadata.jsonl").read_text().splitlines()
    return [{"title": row["title"], "text": row["text"]} for row in map(json.loads, lines)]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("text-drift-home")
    with Services.open(home=home) as services:
        services.workspaces.create("ads")
        services.datasets.add("ads", "ads", generate(home.parent / "ads", count=1000, seed=5).path)
        run = start_run(services, "ads", "text-classifier", "ads", {}).wait()
        assert run["status"] == "succeeded", run["error"]
    return home


@pytest.fixture(scope="module")
def client(home: Path) -> Iterator[httpx.Client]:
    with Services.open(home=home) as services, running_server(services) as client:
        wait_ready(client)
        for endpoint in ("fresh", "cars"):
            deploy = {"workspace": "ads", "endpoint": endpoint, "model": "text-classifier@1",
                      "device": "cpu"}  # fmt: skip
            answer = client.post("/v1/deployments", json=deploy)
            assert answer.status_code == 201, answer.text
        yield client


def version(services: Services) -> dict[str, Any]:
    return dict(services.models.get("ads", "text-classifier@1"))


def test_the_profile_keeps_the_vocabulary_and_realistic_word_features(home: Path) -> None:
    with Services.open(home=home) as services:
        profile = ensure_profile(services, version(services))
    assert profile is not None
    vocabulary = profile["vocabulary"]
    assert 100 < len(vocabulary) <= 20_000 and {"mug", "chair", "lamp"} <= set(vocabulary)
    assert "car" not in vocabulary  # the generator keeps cars off by default
    oov = profile["features"]["oov_rate"]
    assert list(profile["features"])[-2:] == ["oov_rate", "new_words"]
    # Rows measured against the other folds' words: mostly known, not all (typos, rare words).
    assert 0 < sum(oov) / len(oov) < 0.05 and max(oov) > 0 and min(oov) == 0


def test_unseen_words_are_captured_and_drift_but_fresh_ads_do_not(
    client: httpx.Client, home: Path, tmp_path: Path
) -> None:
    streams = {
        "fresh": ads(tmp_path / "fresh", STREAM, seed=11),
        "cars": ads(tmp_path / "cars", STREAM, seed=12, categories=["car"]),
    }
    for endpoint, stream in streams.items():
        answer = client.post(f"/v1/endpoints/{endpoint}/predict", json={"instances": stream})
        assert answer.status_code == 200, answer.text
    reports = {}
    for endpoint in streams:
        drift = client.get("/v1/workspaces/ads/monitoring/drift", params={"endpoint": endpoint})
        assert drift.status_code == 200, drift.text
        reports[endpoint] = drift.json()
    with Services.open(home=home) as services:
        rows = {e: services.predictions.recent("ads", e, limit=STREAM) for e in streams}
    means = {}
    for endpoint, captured in rows.items():
        assert len(captured) == STREAM
        features = [r["features"] for r in captured]
        assert all(
            0 <= f["oov_rate"] <= 1 and f["new_words"] == int(f["new_words"]) for f in features
        )
        assert all((f["oov_rate"] == 0) == (f["new_words"] == 0) for f in features)
        means[endpoint] = sum(f["oov_rate"] for f in features) / len(features)
        stored = json.dumps(captured)
        assert not any(ad["text"] in stored for ad in streams[endpoint])  # the texts are not kept
    assert means["fresh"] < 0.05 < 0.15 < means["cars"], means
    fresh, cars = reports["fresh"], reports["cars"]
    assert {"oov_rate", "new_words"} <= {f["feature"] for f in fresh["features"]}
    assert "oov_rate" not in fresh["drifted"] and "new_words" not in fresh["drifted"], fresh
    assert {"oov_rate", "new_words"} <= set(cars["drifted"]), cars
    oov = next(f for f in cars["features"] if f["feature"] == "oov_rate")
    assert oov["samples"] == STREAM and oov["current_mean"] > 10 * oov["reference_mean"]
    assert oov["psi"] >= 0.25  # the drift_psi alert rule reads PSI alone


def test_a_missing_or_old_profile_is_built_off_the_capture_thread(home: Path) -> None:
    with Services.open(home=home) as services:
        row = version(services)
        stored = ensure_profile(services, row)
        assert stored is not None
        old = {k: v for k, v in stored.items() if k != "vocabulary"}  # from before vocabularies
        services.registry.write(
            lambda db: db.execute(
                "UPDATE reference_profiles SET profile = ? WHERE model_version_id = ?",
                [json.dumps(old), row["id"]],
            ).close()
        )
        vocabularies = Vocabularies(services)
        assert vocabularies.get(row["id"]) == frozenset()  # not yet: capture does not wait
        vocabularies.wait(60)
        assert vocabularies.get(row["id"]) == frozenset(stored["vocabulary"])
        assert ensure_profile(services, row) == stored  # rebuilt, stored, the same again
        assert vocabularies.get("no-such-version") == frozenset()
        vocabularies.wait(60)
        assert vocabularies.get("no-such-version") == frozenset()
