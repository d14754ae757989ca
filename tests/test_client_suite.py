"""The Python client, the same tests on both backends: `local` on the home, `remote` over HTTP to
a real server on loopback serving that home. Then what only one of them has: the token, an
address that does not answer, a home without a server."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from serving_harness import free_port, running_server

import appliance
from appliance.access.roles import Forbidden, Role
from appliance.client import Client
from appliance.client.errors import NotAllowed, Unreachable
from appliance.client.transfer import packed, unpack_into
from appliance.errors import Conflict, InvalidInput, NotFound
from appliance.services import Services


@contextmanager
def connected(kind: str, home: Path, cache: Path, serve: bool) -> Iterator[Client]:
    """A client of `kind` on `home`; `serve` runs the home's server for a local one too (the
    remote one always talks to it)."""
    with ExitStack() as stack:
        url = None
        if kind == "remote" or serve:
            services = stack.enter_context(Services.open(home=home))
            url = str(stack.enter_context(running_server(services, restore=False)).base_url)
        if kind == "remote":
            assert url is not None
            client = appliance.connect(url, cache=cache)
        else:
            client = appliance.connect(home=str(home))
        with client:
            yield client


@pytest.fixture(params=["local", "remote"])
def client(request: pytest.FixtureRequest, isolated_home: Path, tmp_path: Path) -> Iterator[Client]:
    with connected(request.param, isolated_home, tmp_path / "cache", serve=False) as made:
        yield made


@pytest.fixture(params=["local", "remote"])
def served_client(
    request: pytest.FixtureRequest, isolated_home: Path, tmp_path: Path
) -> Iterator[Client]:
    with connected(request.param, isolated_home, tmp_path / "cache", serve=True) as made:
        yield made


def test_run_lifecycle_like_mlflow(client: Client, photos: Path, tmp_path: Path) -> None:
    ws = client.workspace("classified-ads")
    added = ws.add_dataset("photos", photos)
    assert added["version"] == 1 and ws.dataset("photos")["digest"] == added["digest"]
    assert [d["name"] for d in ws.datasets()] == ["photos"]
    with ws.start_run(recipe="notebook", params={"lr": 0.001}, dataset="photos", seed=7) as run:
        run.log_params({"epochs": 3, "model": {"width": 64}, "out": Path("out/model")})
        for step in range(3):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
        run.log_metrics({"exact_match": 0.91, "bleu": 80.5}, step=3)
        (tmp_path / "notes.txt").write_text("hello")
        assert run.log_artifact(tmp_path / "notes.txt") == ["notes.txt"]
        stored = run.log_artifact(photos, name="inputs")
        assert len(stored) == len([p for p in photos.rglob("*") if p.is_file()])
        assert all(name.startswith("inputs/") for name in stored)
        assert run.info["status"] == "running"
    info = run.info
    assert info["status"] == "succeeded" and info["ended_at"]
    assert info["params"] == {
        "lr": 0.001, "epochs": 3, "model": "{'width': 64}", "out": "out/model"
    }  # fmt: skip
    assert info["seed"] == 7 and info["dataset_digest"] == added["digest"]
    assert [p["value"] for p in run.metrics()["loss"]] == [1.0, 0.5, 1.0 / 3]
    assert [p["step"] for p in run.metrics()["loss"]] == [0, 1, 2]
    assert run.latest_metrics() == {"loss": 1.0 / 3, "exact_match": 0.91, "bleu": 80.5}
    assert [r["id"] for r in ws.runs()] == [run.id]
    assert ws.runs(status="failed") == []


def test_failed_and_interrupted_runs(client: Client) -> None:
    ws = client.workspace("ws")
    with pytest.raises(ValueError), ws.start_run() as failing:
        raise ValueError("diverged")
    assert failing.info["status"] == "failed"
    assert failing.info["error"] == "ValueError: diverged"
    with pytest.raises(KeyboardInterrupt), ws.start_run() as interrupted:
        raise KeyboardInterrupt
    assert interrupted.info["status"] == "cancelled"
    with pytest.raises(Conflict, match="already finished"):
        client.backend.end_run("ws", failing.id, "succeeded", None)


def test_refusals_are_the_local_errors(client: Client) -> None:
    ws = client.workspace("ws")
    run = ws.start_run(params={"lr": 0.1})
    with pytest.raises(Conflict, match="params cannot change"):
        run.log_param("lr", 0.2)
    run.log_param("lr", 0.1)  # the same value again is fine
    run.end()
    with pytest.raises(NotFound, match="missing"):
        client.workspace("missing", create=False)
    with pytest.raises(NotFound, match="no model 'nothing'"):
        ws.model_version("nothing@1")
    with pytest.raises(InvalidInput):
        ws.runs(status="sleeping")
    assert [w.name for w in client.workspaces()] == ["ws"]


def test_register_list_alias_and_load(client: Client, tiny_model: Path, tmp_path: Path) -> None:
    ws = client.workspace("ws")
    with ws.start_run(recipe="notebook") as run:
        run.log_metric("exact_match", 0.5, step=1)
        run.log_metric("exact_match", 0.8, step=2)
        version = run.register_model(tiny_model, "lm")
    assert (version.name, version.version) == ("lm", 1)
    assert version.metrics == {"exact_match": 0.8}  # the run's latest, by default
    assert version.record["run_id"] == run.id and version.record["task"] == "text-classification"
    assert [m["name"] for m in ws.models()] == ["lm"]
    assert [v.version for v in ws.model_versions("lm")] == [1]
    assert version.set_alias("staging").aliases == ["staging"]
    assert ws.model_version("lm@staging").version == 1
    folder = version.path  # remote: downloaded into the cache, not read from the home
    assert folder.is_relative_to(tmp_path / "cache") == client.backend.where.startswith("http")
    assert (folder / "config.json").read_bytes() == (tiny_model / "config.json").read_bytes()
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in tiny_model.iterdir())
    model = ws.load_model("lm@staging")
    assert type(model).__name__ == "BertForSequenceClassification"


def test_promote_through_the_gate_and_remove_an_alias(client: Client, tiny_model: Path) -> None:
    ws = client.workspace("ws")
    with ws.start_run(recipe="notebook") as run:
        version = run.register_model(tiny_model, "lm", metrics={"accuracy": 1.0})
    # No dataset behind it: the gate has nothing to evaluate on, so only `force` promotes.
    with pytest.raises(InvalidInput):
        version.promote("production")
    assert ws.model_version("lm@1").aliases == []
    gate = version.promote("production", force=True)
    assert gate["forced"] is True and gate["candidate_value"] is None
    assert gate["summary"] == "accuracy not evaluated (forced, with no dataset to evaluate on)"
    assert gate["candidate"]["aliases"] == ["production"] and gate["current"] is None
    assert ws.model_version("lm@production").version == 1
    ws.remove_alias("lm", "production")
    assert ws.model_version("lm@1").aliases == []
    with pytest.raises(NotFound, match="no alias 'production'"):
        ws.remove_alias("lm", "production")


def test_cancel_and_logs_of_a_run(client: Client, isolated_home: Path, tmp_path: Path) -> None:
    ws = client.workspace("ws")
    logged = ws.start_run()
    with pytest.raises(NotFound, match="has no log"):
        logged.logs()
    assert logged.cancel()["status"] == "cancelled"
    assert logged.info["error"] == "cancelled by the user"
    with pytest.raises(Conflict, match="already finished as cancelled"):
        ws.run(logged.id).cancel()
    # A started run's child writes its log; here one is written for it.
    started = ws.start_run()
    log = tmp_path / "run.log"
    log.write_text("epoch 1\nepoch 2\nepoch 3\n")
    with Services.open(home=isolated_home) as services:
        services.registry.write(
            lambda db: db.execute(
                "UPDATE runs SET log_path = ? WHERE id = ?", [str(log), started.id]
            ).close()
        )
    assert ws.run(started.id).logs() == "epoch 1\nepoch 2\nepoch 3\n"
    assert started.logs(tail=2) == "epoch 2\nepoch 3\n"
    started.end()
    with pytest.raises(NotFound):
        ws.run("no-such-run")


def test_dataset_diff(client: Client, photos: Path, tmp_path: Path) -> None:
    ws = client.workspace("ws")
    ws.add_dataset("photos", photos)
    fewer = tmp_path / "fewer"
    shutil.copytree(photos, fewer)
    rows = (fewer / "metadata.jsonl").read_text().splitlines()
    dropped = json.loads(rows[0])["file_name"]
    (fewer / dropped).unlink()
    (fewer / "metadata.jsonl").write_text("\n".join(rows[1:]) + "\n")
    ws.add_dataset("photos", fewer)
    diff = ws.dataset_diff("photos@1", "photos@2")
    assert (diff["from"]["version"], diff["to"]["version"]) == (1, 2)
    assert diff["removed"] == [dropped] and diff["added"] == diff["changed"] == []
    assert ws.dataset_diff("photos@2", "photos@1")["added"] == [dropped]
    with pytest.raises(NotFound):
        ws.dataset_diff("photos@1", "photos@9")


def test_every_run_is_listed(client: Client, isolated_home: Path) -> None:
    ws = client.workspace("ws")
    made = [ws.start_run(name=f"r{i}") for i in range(60)]  # more than the route's default 50
    listed = ws.runs()
    assert len(listed) == 60 and {r["id"] for r in listed} == {r.id for r in made}
    with Services.open(home=isolated_home) as services:  # the same rows as the home's own
        assert listed == services.runs.list("ws")
    assert [r["id"] for r in ws.runs(limit=5)] == [r["id"] for r in listed[:5]]
    assert len(ws.runs(status="running")) == 60


def test_deploy_predict_and_feedback(served_client: Client, tiny_model: Path) -> None:
    ws = served_client.workspace("ws")
    with ws.start_run() as run:
        run.register_model(tiny_model, "lm", metrics={"accuracy": 1.0})
    deployment = ws.deploy("reviews", "lm@1", device="cpu")
    assert (deployment["endpoint"], deployment["version"]) == ("reviews", 1)
    answer = ws.predict("reviews", text="a lovely red mug", title="mug")
    assert answer["model"] == "lm" and answer["label"] in answer["scores"]
    rated = served_client.feedback(answer["id"], rating=5, thumb="up", comment="right")
    assert (rated["prediction_id"], rated["rating"], rated["thumb"]) == (answer["id"], 5, "up")
    with pytest.raises(NotFound):
        served_client.feedback("no-such-prediction", rating=1)
    with pytest.raises(InvalidInput, match="text"):
        ws.predict("reviews", keywords="mug")  # a text classifier takes a text
    with pytest.raises(NotFound):
        ws.predict("nowhere", text="hello")


def test_remote_token_from_the_environment(
    isolated_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Services.open(home=isolated_home, token="s3cret-token") as services, running_server(
        services, restore=False
    ) as http:  # fmt: skip
        url = str(http.base_url)
        with appliance.connect(url, cache=tmp_path) as anonymous, pytest.raises(
            NotAllowed, match="APPLIANCE_TOKEN"
        ):  # fmt: skip
            anonymous.workspace("ws")
        with appliance.connect(url, token="wrong", cache=tmp_path) as guessing, pytest.raises(
            NotAllowed
        ):  # fmt: skip
            guessing.workspace("ws")
        monkeypatch.setenv("APPLIANCE_TOKEN", "s3cret-token")
        with appliance.connect(url, cache=tmp_path) as known:
            assert known.workspace("ws").name == "ws"
            assert [w.name for w in known.workspaces()] == ["ws"]


def test_remote_roles_refuse_as_forbidden(isolated_home: Path, tmp_path: Path) -> None:
    with Services.open(home=isolated_home, token="admin-token") as services:
        services.workspaces.create("ws")
        services.workspaces.create("other")
        _, viewer = services.users.add("ann", Role.viewer, workspace="ws")
        with running_server(services, restore=False) as http, appliance.connect(
            str(http.base_url), token=viewer, cache=tmp_path
        ) as client:  # fmt: skip
            ws = client.workspace("ws", create=False)
            assert ws.runs() == [] and ws.models() == []
            with pytest.raises(Forbidden, match="viewer"):
                ws.start_run()
            with pytest.raises(Forbidden, match="only the workspace 'ws'"):
                client.workspace("other", create=False)


def test_an_address_that_does_not_answer(tmp_path: Path) -> None:
    with appliance.connect(f"http://127.0.0.1:{free_port()}", cache=tmp_path) as client:
        with pytest.raises(Unreachable, match="did not answer"):
            client.workspaces()
        assert client.backend.where.startswith("http://127.0.0.1:")
        with pytest.raises(InvalidInput, match="over HTTP"):
            _ = client.services


def test_local_feedback_after_the_server_stopped(
    isolated_home: Path, tmp_path: Path, tiny_model: Path
) -> None:
    with connected("local", isolated_home, tmp_path, serve=True) as client:
        ws = client.workspace("ws")
        with ws.start_run() as run:
            run.register_model(tiny_model, "lm", metrics={})
        ws.deploy("reviews", "lm@1", device="cpu")
        answer = ws.predict("reviews", text="a lovely red mug")
    with appliance.connect(home=str(isolated_home)) as client:  # no server now
        rated = client.feedback(answer["id"], rating=2, ignored_keywords=[])
        assert (rated["prediction_id"], rated["rating"]) == (answer["id"], 2)
        with pytest.raises(NotFound):
            client.feedback("no-such-prediction", thumb="down")


def test_local_predict_needs_the_homes_server(isolated_home: Path) -> None:
    with appliance.connect(home=str(isolated_home)) as client, pytest.raises(
        Unreachable, match="no server runs for the home"
    ):  # fmt: skip
        client.predict("reviews", text="hello")


def test_connect_arguments(isolated_home: Path) -> None:
    with pytest.raises(InvalidInput, match="apply to a home"):
        appliance.connect("http://box:8765", home=str(isolated_home))
    with pytest.raises(InvalidInput, match="apply to a server"):
        appliance.connect(home=str(isolated_home), token="t")
    with appliance.connect(str(isolated_home)) as client:  # a home, given positionally
        assert client.services.settings.home == isolated_home


def test_a_download_is_complete_or_absent(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(InvalidInput, match="broken archive"):
        unpack_into([b"not a tar at all" * 64], cache / "v1")
    escaping = io.BytesIO()
    with tarfile.open(fileobj=escaping, mode="w") as tar:
        member = tarfile.TarInfo("../outside.txt")
        member.size = 2
        tar.addfile(member, io.BytesIO(b"hi"))
    with pytest.raises(InvalidInput, match="broken archive"):
        unpack_into([escaping.getvalue()], cache / "v2")
    assert list(cache.iterdir()) == [] and not (tmp_path / "outside.txt").exists()
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    with packed(tmp_path / "model") as archive:
        assert unpack_into([archive.read()], cache / "v3") == cache / "v3"
    assert [p.name for p in cache.iterdir()] == ["v3"]
    assert (cache / "v3" / "config.json").read_text() == "{}"


def test_importing_the_client_imports_no_torch() -> None:
    probe = (
        "import sys, appliance, appliance.client, appliance.client.local, "
        "appliance.client.remote; print('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
