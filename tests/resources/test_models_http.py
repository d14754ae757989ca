"""Model versions over real HTTP: a folder uploaded as a tar is registered through the same
intake as `appliance model register` (loaded and asked one input first), downloaded through
`/files` and loaded; aliases; and a promotion the evaluation gate refuses."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
from resources.helpers import leftovers, member, refused, tar_of, tar_with
from serving_harness import running_server

from appliance.models.loading import load_pretrained
from appliance.runs.launcher import start_run
from appliance.services import Services

COLOUR = Path(__file__).parents[1] / "recipes" / "colour"
MODELS = "/v1/workspaces/ads/models"


def _digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*") if p.is_file()
    }  # fmt: skip


def test_upload_download_and_load(services: Services, tiny_model: Path, tmp_path: Path) -> None:
    services.workspaces.create("ads")
    services.workspaces.create("other")
    run = services.runs.create("ads", name="nb")
    services.runs.log_metric(run["id"], "accuracy", 0.75)
    elsewhere = services.runs.create("other")
    archive = tar_of(tiny_model, "bert-cls/")
    with running_server(services, restore=False) as client:
        sent = client.post(
            f"{MODELS}/classifier/versions",
            files={"archive": ("bert.tar", archive)}, data={"run_id": run["id"]},
        )  # fmt: skip
        assert sent.status_code == 201, sent.text
        v1 = sent.json()
        assert (v1["version"], v1["runtime"], v1["task"]) == (
            1,
            "huggingface",
            "text-classification",
        )
        assert v1["run_id"] == run["id"] and v1["metrics"] == {"accuracy": 0.75}
        assert "check" in v1["info"]  # it was loaded and answered one input
        second = client.post(
            f"{MODELS}/classifier/versions", files={"archive": ("bert.tar", archive)},
            data={"metrics": json.dumps({"accuracy": 0.8}), "description": "by hand"},
        )  # fmt: skip
        assert second.status_code == 201 and second.json()["metrics"] == {"accuracy": 0.8}
        assert second.json()["run_id"] is None and second.json()["description"] == "by hand"

        assert [m["name"] for m in client.get(MODELS).json()] == ["classifier"]
        versions = client.get(f"{MODELS}/classifier/versions").json()
        assert [v["version"] for v in versions] == [1, 2]
        assert client.get(f"{MODELS}/classifier").json()["version"] == 2
        assert client.get(f"{MODELS}/classifier@v1").json()["id"] == v1["id"]

        put = client.put(f"{MODELS}/classifier/aliases/staging", json={"version": 1})
        assert put.status_code == 200 and put.json()["aliases"] == ["staging"]
        assert client.get(f"{MODELS}/classifier@staging").json()["version"] == 1
        refused(client.put(f"{MODELS}/classifier/aliases/3", json={"version": 1}), 400, "a word")

        files = client.get(f"{MODELS}/classifier@staging/files")
        assert files.status_code == 200, files.text
        assert files.headers["content-type"] == "application/x-tar"
        with tarfile.open(fileobj=io.BytesIO(files.content)) as tar:
            tar.extractall(tmp_path / "downloaded", filter="data")
        assert _digests(tmp_path / "downloaded") == _digests(tiny_model)
        assert type(load_pretrained(tmp_path / "downloaded")).__name__.endswith("Classification")

        assert client.delete(f"{MODELS}/classifier/aliases/staging").status_code == 204
        refused(client.delete(f"{MODELS}/classifier/aliases/staging"), 404, "no alias 'staging'")
        refused(client.get(f"{MODELS}/classifier@staging"), 404, "no version or alias 'staging'")
        refused(client.get(f"{MODELS}/nope/versions"), 404, "no model 'nope'")
        refused(client.get(f"{MODELS}/nope/files"), 404, "no model 'nope'")
        refused(
            client.post(f"{MODELS}/classifier/versions", files={"archive": ("b.tar", archive)},
                        data={"run_id": elsewhere["id"]}),
            404, f"no run '{elsewhere['id']}' in workspace 'ads'",
        )  # fmt: skip
        refused(
            client.post(f"{MODELS}/classifier/versions", files={"archive": ("b.tar", archive)},
                        data={"metrics": "[1]"}),
            400, "JSON object of numbers",
        )  # fmt: skip
        refused(
            client.post(f"{MODELS}/classifier/versions", content=archive,
                        headers={"content-type": "application/x-tar"}),
            415, "not accepted",
        )  # fmt: skip
    assert [v["version"] for v in services.models.versions("ads", "classifier")] == [1, 2]
    assert leftovers(services.settings.home) == []


def test_a_folder_that_cannot_serve_or_escapes_is_refused(
    services: Services, tiny_model: Path, tmp_path: Path
) -> None:
    services.workspaces.create("ads")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"architectures": ["BertForSequenceClassification"]}')
    (broken / "model.safetensors").write_bytes(b"not weights")
    escaping = tar_with(member("config.json"), member("w", tarfile.SYMTYPE, "/etc/passwd"))
    with running_server(services, restore=False) as client:
        answer = client.post(f"{MODELS}/m/versions", files={"archive": ("b.tar", tar_of(broken))})
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"].startswith("the archive") and str(tmp_path) not in answer.text
        refused(client.post(f"{MODELS}/m/versions", files={"archive": ("e.tar", escaping)}),
                400, "a link")  # fmt: skip
        refused(client.post(f"{MODELS}/m/versions", files={"archive": ("t.tar", tar_of(tiny_model))},
                            data={"task": "no-such-task"}), 400, "unknown task")  # fmt: skip
        refused(client.post(f"{MODELS}/bad..name/versions", files={"archive": ("x", b"")}),
                400, "must not contain")  # fmt: skip
    models_root = services.settings.home / "models"
    assert services.models.list("ads") == []
    assert not models_root.exists() or [p.name for p in models_root.iterdir()] in ([], [".staging"])
    assert leftovers(services.settings.home) == []


@pytest.fixture
def two_colours(services: Services, tmp_path: Path) -> Services:
    """colour@1 (right as often as it can be) and colour@2 (never right), trained by runs."""
    from appliance.datasets.synthetic import generate

    services.workspaces.create("ads")
    services.datasets.add("ads", "photos", generate(tmp_path / "p", count=80, seed=4).path)
    services.recipes.add("ads", COLOUR)
    for rank in (0, 99):
        run = start_run(services, "ads", "colour", "photos", {"rank": rank}).wait()
        assert run["status"] == "succeeded", run["error"]
    return services


def test_the_gate_refuses_a_worse_promotion(two_colours: Services) -> None:
    services = two_colours
    with running_server(services, restore=False) as client:
        first = client.post(f"{MODELS}/colour/promote", json={"version": 1})
        assert first.status_code == 200, first.text
        assert first.json()["current"] is None and first.json()["metric"] == "exact_match"
        assert first.json()["candidate"]["aliases"] == ["production"]
        refused(
            client.post(f"{MODELS}/colour/promote", json={"version": 2, "alias": "production"}),
            409, "colour@2 is worse than production (colour@1): exact_match",
        )  # fmt: skip
        assert client.get(f"{MODELS}/colour@production").json()["version"] == 1
        forced = client.post(f"{MODELS}/colour/promote", json={"version": 2, "force": True})
        assert forced.status_code == 200 and forced.json()["forced"] is True
        assert forced.json()["current"]["version"] == 1
        assert forced.json()["candidate_value"] < forced.json()["current_value"]
        assert "for version 1" in forced.json()["summary"]
        refused(client.post(f"{MODELS}/colour/promote", json={"version": 7}), 404, "'7'")
    assert services.models.get("ads", "colour@production")["version"] == 2
