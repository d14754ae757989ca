"""The offline bundle: built from this checkout, installed into a fresh venv with
`pip install --no-index` from the bundle's wheels alone, then used: `appliance --help`, a
captioner trained from the built-in recipe the wheel ships, deployed, and asked over HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from serving_harness import free_port, wait_until_up

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("bundle")
    bundle = work / "appliance-bundle"
    subprocess.run(
        [str(ROOT / "packaging" / "build-offline-bundle"), str(bundle)],
        check=True, capture_output=True, env={**os.environ, "PYTHON": sys.executable},
    )  # fmt: skip
    assert (work / "appliance-bundle.tar.gz").stat().st_size > 0
    prefix = work / "prefix"
    # No index, no find-links but the bundle's, no pip config: only what the bundle holds.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    subprocess.run(
        [str(bundle / "install.sh"), str(prefix)],
        check=True, capture_output=True, env={**env, "PYTHON": sys.executable},
    )  # fmt: skip
    return prefix


@pytest.mark.slow  # builds a wheel bundle and installs it into a fresh venv: 4 minutes
def test_the_bundle_installs_offline_and_serves(installed: Path, tmp_path: Path) -> None:
    appliance = str(installed / "bin" / "appliance")
    home = tmp_path / "home"
    env = {**os.environ, "APPLIANCE_HOME": str(home)}

    def run(*args: str) -> str:
        done = subprocess.run(
            [appliance, *args], capture_output=True, text=True, env=env, cwd=tmp_path
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "serve" in run("--help")
    run("workspace", "create", "ads")
    run("dataset", "generate", str(tmp_path / "photos"), "--count", "40", "--seed", "1")
    run("dataset", "add", "ads", "photos", str(tmp_path / "photos"))
    out = run(
        "run", "start", "ads", "--recipe", "captioner", "--dataset", "photos", "--param", "epochs=1"
    )
    assert "registered captioner@1" in out
    run("deploy", "ads", "captions", "captioner@1", "--quantization", "int8", "--device", "cpu")
    port = free_port()
    server = subprocess.Popen(
        [appliance, "serve", "--port", str(port), "--log-level", "warning"], env=env
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_up(server, f"{base}/v2/health/ready", 120, what="the installed server")
        photo = next((tmp_path / "photos").glob("*.png")).read_bytes()
        answer = httpx.post(f"{base}/v1/endpoints/captions/predict", content=photo,
                            headers={"content-type": "image/png"}, timeout=60)  # fmt: skip
        assert answer.status_code == 200, answer.text
        assert answer.json()["model"] == "captioner" and answer.json()["description"]
    finally:
        server.terminate()
        server.wait(60)
