"""`appliance serve` as a real process, and `appliance deploy` both with and without it: the CLI\nfinds its own home's server whatever its port, and never another home's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from serving_harness import free_port, wait_until_up

from appliance.cli import cli
from appliance.datasets.synthetic import generate
from appliance.runs.launcher import start_run
from appliance.server.record import HOME_HEADER, RECORD_FILE, home_id, read_record
from appliance.services import Services

COLOUR = Path(__file__).parent / "recipes" / "colour"


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def trained(isolated_home: Path, tmp_path: Path) -> Path:
    with Services.open(home=isolated_home) as services:
        services.workspaces.create("ads")
        services.datasets.add("ads", "photos", generate(tmp_path / "p", count=60, seed=1).path)
        services.recipes.add("ads", COLOUR)
        for rank in ("0", "1"):
            run = start_run(services, "ads", "colour", "photos", {"rank": rank}).wait()
            assert run["status"] == "succeeded"
    return isolated_home


def test_refuses_to_listen_beyond_loopback_without_a_token() -> None:
    code, _, err = invoke("serve", "--host", "0.0.0.0")
    assert code == 1 and "needs a token" in err


def test_deploy_without_a_server_then_serve_then_hot_swap(trained: Path) -> None:
    code, out, err = invoke("deploy", "ads", "captions", "colour@1")
    assert code == 0, err
    assert "captions → colour@1 (none, auto): loaded and checked here" in out
    code, out, _ = invoke("deploy", "list", "ads")  # no server: the backend asked for
    assert code == 0 and out.split("\n")[0].split()[5] == "BACKEND", out
    assert out.split("\n")[1].split()[5] == "auto", out
    code, _, err = invoke("deploy", "ads", "captions", "colour@1", "--quantization", "nf4")
    assert code == 1 and "cannot quantize" in err
    # Started with --port: the CLI, whose settings say nothing of that port, still finds it
    # through the address the server records in the home.
    port = free_port()
    server = serve(trained, "--port", str(port))
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_up(server, f"{base}/v2/health/ready")
        assert json.loads((trained / RECORD_FILE).read_text())["url"] == base
        models = httpx.get(f"{base}/v2/models/captions").json()
        assert models["versions"] == ["1"]
        code, out, err = invoke("deploy", "ads", "captions", "colour@2")
        assert code == 0, err
        # What runs it: a recipe's model is torch's, whatever `auto` would pick for a folder.
        assert "colour@2 (none, auto, torch): the running server switched to it" in out, out
        code, out, _ = invoke("deploy", "list", "ads")
        assert out.split("\n")[1].split()[5] == "torch", out
        assert httpx.get(f"{base}/v2/models/captions").json()["versions"] == ["2"]
        code, out, _ = invoke("deploy", "rollback", "ads", "captions")
        assert code == 0 and "colour@1" in out and "the running server switched back" in out
        code, out, _ = invoke("deploy", "list", "ads", "--json")
        assert json.loads(out)[0]["version"] == 1
    finally:
        stop(server)
    assert not (trained / RECORD_FILE).exists()  # a clean stop leaves no record behind


def test_the_cli_of_another_home_never_reaches_this_homes_server(
    trained: Path, tmp_path: Path
) -> None:
    # Home A serves on the port home B's settings name too. B's CLI asks for A's endpoint:
    # it must not find A's server (it looks in its own home), so it works on B, where there
    # is no such workspace, and says so.
    code, _, err = invoke("deploy", "ads", "captions", "colour@1")
    assert code == 0, err
    port = free_port()
    server = serve(trained, "--port", str(port))
    other = tmp_path / "other-home"
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(server, f"{base}/v2/health/ready")
        b_env = {"APPLIANCE_HOME": str(other), "APPLIANCE_PORT": str(port)}
        code, out, err = invoke("deploy", "ads", "captions", "colour@2", env=b_env)
        assert code == 1 and "the running server" not in out
        assert "no workspace 'ads'" in err, err
        assert httpx.get(f"{base}/v2/models/captions").json()["versions"] == ["1"]
        # A request naming home B, sent to A's server by hand, is refused with the way out.
        refused = httpx.post(
            f"{base}/v1/deployments", headers={HOME_HEADER: home_id(other)},
            json={"workspace": "ads", "endpoint": "captions", "model": "colour@2"},
        )  # fmt: skip
        assert refused.status_code == 421
        assert f"this server serves the home {trained}" in refused.json()["error"]
        assert httpx.get(f"{base}/v2/models/captions").json()["versions"] == ["1"]
    finally:
        stop(server)


def serve(home: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "APPLIANCE_HOME": str(home)}
    return subprocess.Popen(
        [sys.executable, "-m", "appliance", "serve", "--log-level", "warning", *args],
        env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def stop(server: subprocess.Popen[str]) -> None:
    server.send_signal(signal.SIGTERM)
    # uvicorn shuts down gracefully, then re-raises the signal it caught (systemd: clean).
    assert server.wait(30) in (0, -signal.SIGTERM)
    assert server.stderr is not None and "Traceback" not in server.stderr.read()


def test_feedback_survives_kill_9_right_after_its_2xx(trained: Path, tmp_path: Path) -> None:
    code, _, err = invoke("deploy", "ads", "captions", "colour@1")
    assert code == 0, err
    port = free_port()
    env = {**os.environ, "APPLIANCE_HOME": str(trained), "APPLIANCE_PORT": str(port)}
    server = subprocess.Popen(
        [sys.executable, "-m", "appliance", "serve", "--log-level", "warning"], env=env
    )
    base = f"http://127.0.0.1:{port}"
    photos = generate(tmp_path / "traffic", count=12, seed=5).path
    acknowledged = []
    try:
        wait_until_up(server, f"{base}/v2/health/ready")
        with httpx.Client(base_url=base, timeout=30) as client:
            for i, image in enumerate(sorted(photos.glob("*.png"))):
                answer = client.post(
                    "/v1/endpoints/captions/predict", content=image.read_bytes(),
                    headers={"content-type": "image/png"},
                ).json()  # fmt: skip
                rated = client.post(
                    f"/v1/predictions/{answer['id']}/feedback", json={"rating": 1 + i % 5}
                )
                assert rated.status_code == 201
                acknowledged.append((answer["id"], 1 + i % 5))
        os.kill(server.pid, signal.SIGKILL)  # no shutdown, no flush: only what was committed
    finally:
        if server.poll() is None:
            server.kill()
        server.wait(30)
    # The record the killed server could not remove misleads no one: its pid is gone.
    assert (trained / RECORD_FILE).exists() and read_record(trained) is None
    with Services.open(home=trained) as services:
        assert services.registry.query("PRAGMA integrity_check")[0]["integrity_check"] == "ok"
        stored = services.registry.query("SELECT prediction_id, rating FROM feedback ORDER BY id")
    assert [(r["prediction_id"], r["rating"]) for r in stored] == acknowledged
