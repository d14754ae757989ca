"""Runs over real HTTP: a notebook's run (open, log metrics, params and an artifact, end), a
recipe started in a child process and watched to the end, a cancel, the log, and a run id of
another workspace answered 404 with nothing written to it."""

from __future__ import annotations

from pathlib import Path

import pytest
from resources.helpers import refused, wait_finished
from serving_harness import running_server

from appliance.services import Services

COLOUR = Path(__file__).parents[1] / "recipes" / "colour"
RUNS = "/v1/workspaces/ads/runs"


@pytest.fixture
def ws(services: Services, photos: Path) -> Services:
    for name in ("ads", "other"):
        services.workspaces.create(name)
    services.datasets.add("ads", "photos", photos)
    services.recipes.add("ads", COLOUR)
    return services


def test_a_notebook_run(ws: Services, tmp_path: Path) -> None:
    with running_server(ws, restore=False) as client:
        made = client.post(
            RUNS, json={"execute": False, "name": "nb", "params": {"lr": 0.1}, "dataset": "photos"}
        )
        assert made.status_code == 201, made.text
        run = made.json()
        assert (run["status"], run["name"], run["params"]) == ("running", "nb", {"lr": 0.1})
        assert run["dataset_digest"] == ws.datasets.get("ads", "photos")["digest"]
        path = f"{RUNS}/{run['id']}"
        points = [
            {"key": "loss", "value": 1.0, "step": 1},
            {"key": "loss", "value": 0.5, "step": 2},
        ]
        assert client.post(f"{path}/metrics", json={"metrics": points}).json() == {"logged": 2}
        client.post(f"{path}/metrics", json={"metrics": [{"key": "acc", "value": 0.9}]})
        history = client.get(f"{path}/metrics", params={"key": "loss"}).json()
        assert [(m["step"], m["value"]) for m in history] == [(1, 1.0), (2, 0.5)]
        assert {m["key"] for m in client.get(f"{path}/metrics").json()} == {"loss", "acc"}
        assert client.post(f"{path}/params", json={"params": {"epochs": 3}}).status_code == 200
        refused(client.post(f"{path}/params", json={"params": {"lr": 0.2}}), 409, "cannot change")
        refused(client.post(f"{path}/metrics", json={"metrics": [{"key": "x", "value": "a"}]}),
                400, "Expected `float`")  # fmt: skip
        notes = tmp_path / "notes.txt"
        notes.write_text("what I tried")
        sent = client.post(f"{path}/artifacts", files={"file": ("notes.txt", notes.read_bytes())})
        assert sent.status_code == 201 and sent.json() == {"stored": ["notes.txt"]}
        named = client.post(f"{path}/artifacts", params={"name": "plots/a.txt"},
                            files={"file": ("whatever", b"1,2")})  # fmt: skip
        assert named.json() == {"stored": ["plots/a.txt"]}
        refused(client.post(f"{path}/artifacts", params={"name": "../x"},
                            files={"file": ("x", b"1")}), 400, "'..'")  # fmt: skip
        refused(client.post(f"{path}/artifacts", files={"other": ("x", b"1")}), 400, "'file'")
        refused(client.get(f"{path}/logs"), 404, "has no log")

        ended = client.post(f"{path}/end", json={})
        assert ended.status_code == 200 and ended.json()["status"] == "succeeded"
        assert ended.json()["metrics"] == {"acc": 0.9, "loss": 0.5}
        assert ended.json()["artifacts"] == ["notes.txt", "plots/a.txt"]
        refused(client.post(f"{path}/end", json={"status": "failed"}), 409, "already finished")
        refused(client.post(f"{path}/end", json={"status": "running"}), 400, "not 'running'")
        listed = client.get(RUNS, params={"status": "succeeded"}).json()
        assert [r["id"] for r in listed] == [run["id"]]
        refused(client.get(RUNS, params={"status": "odd"}), 400, "unknown status")
    blob = ws.runs.artifacts(run["id"])[0]["sha256"]
    assert ws.store.read_bytes(blob) == b"what I tried"
    assert list((ws.settings.home / "tmp").glob("upload-*")) == []


def test_a_run_of_another_workspace_is_404(ws: Services) -> None:
    run = ws.runs.create("ads", name="mine")
    elsewhere = f"/v1/workspaces/other/runs/{run['id']}"
    with running_server(ws, restore=False) as client:
        for answer in (
            client.get(elsewhere),
            client.get(f"{elsewhere}/metrics"),
            client.get(f"{elsewhere}/logs"),
            client.post(f"{elsewhere}/metrics", json={"metrics": [{"key": "loss", "value": 1}]}),
            client.post(f"{elsewhere}/params", json={"params": {"a": 1}}),
            client.post(f"{elsewhere}/end", json={}),
            client.post(f"{elsewhere}/cancel"),
            client.post(f"{elsewhere}/artifacts", files={"file": ("x", b"1")}),
        ):
            refused(answer, 404, f"no run '{run['id']}' in workspace 'other'")
        refused(client.get(f"{RUNS}/nope"), 404, "no run 'nope'")
        refused(client.get("/v1/workspaces/gone/runs"), 404, "no workspace 'gone'")
    after = ws.runs.get(run["id"])
    assert after["status"] == "running" and after["params"] == {}
    assert ws.runs.metrics(run["id"]) == {} and ws.runs.artifacts(run["id"]) == []


def test_a_recipe_runs_in_a_child_and_can_be_cancelled(ws: Services) -> None:
    with running_server(ws, restore=False) as client:
        body = {"recipe": "colour", "dataset": "photos@1", "name": "first", "seed": 3}
        started = client.post(RUNS, json=body)
        assert started.status_code == 201, started.text
        assert started.json()["status"] in ("queued", "running")
        slow = client.post(RUNS, json={"recipe": "colour", "dataset": "photos",
                                       "params": {"steps": 300, "step_seconds": 0.2}})  # fmt: skip
        run = wait_finished(client, "ads", started.json()["id"])
        assert run["status"] == "succeeded", run["error"]
        assert (run["name"], run["seed"], run["params"]["seed"]) == ("first", 3, 3)
        assert "exact_match" in run["metrics"]
        assert ws.models.by_run(run["id"])["name"] == "colour"
        tail = client.get(f"{RUNS}/{run['id']}/logs", params={"tail": 2})
        assert tail.headers["content-type"].startswith("text/plain")
        assert len(tail.text.splitlines()) == 2 and "registered colour@1" in tail.text
        whole = client.get(f"{RUNS}/{run['id']}/logs").text
        assert whole.endswith(tail.text) and len(whole.splitlines()) > 2

        cancelled = client.post(f"{RUNS}/{slow.json()['id']}/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        refused(client.post(f"{RUNS}/{slow.json()['id']}/cancel"), 409, "already finished")

        refused(client.post(RUNS, json={"recipe": "colour"}), 400, "needs a recipe and a dataset")
        refused(client.post(RUNS, json={"recipe": "colour", "dataset": "photos",
                                        "params": {"nope": 1}}), 400, "has no param nope")  # fmt: skip
        refused(client.post(RUNS, json={"recipe": "gone", "dataset": "photos"}), 404, "gone")
        refused(client.post(RUNS, json={"recipe": "colour", "dataset": "photos@9"}), 404, "9")
        assert len(client.get(RUNS, params={"limit": 1}).json()) == 1
