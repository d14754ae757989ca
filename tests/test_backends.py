"""The deploy option `backend` over real HTTP: a small VisionEncoderDecoder captioner (built from
a config, appliance.testing.hf_folders) served by ONNX Runtime (and OpenVINO, where installed)
writes the captions torch writes for the same photos, with the same confidence; its export is
made once per version and reused; what a backend cannot run (another architecture, a
quantization it does not have) is refused with a message naming the backend, the model and
what to use instead, while the endpoint keeps serving what it served."""

from __future__ import annotations

import importlib.util
import io
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image
from serving_harness import running_server, wait_ready

from appliance.models.intake import register_folder
from appliance.runtimes.backends.export import COMPLETE, export_dir
from appliance.services import Services
from appliance.testing.hf_folders import build

COLOURS = ("red", "navy", "olive", "white")


def photo(colour: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 32), colour).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("backends")
    home = root / "home"
    with Services.open(home=home) as services:
        services.workspaces.create("lab")
        for kind in ("vit-gpt2", "bert-cls"):
            register_folder(services, "lab", kind, build(kind, root / kind), check=False)
        # The same captioner decoding greedily: what the backends decode (greedy.py).
        greedy = build("vit-gpt2", root / "greedy")
        config = json.loads((greedy / "generation_config.json").read_text())
        config["num_beams"] = 1
        (greedy / "generation_config.json").write_text(json.dumps(config))
        register_folder(services, "lab", "greedy", greedy, check=False)
        register_folder(services, "lab", "greedy-auto", greedy, check=False)
        # The same folder served by the captioner recipe's own load(): not the backends' to run.
        register_folder(services, "lab", "by-recipe", greedy, recipe="captioner", check=False)
    return home


@pytest.fixture(scope="module")
def client(home: Path) -> Iterator[httpx.Client]:
    with Services.open(home=home) as services, running_server(services) as client:
        wait_ready(client)
        yield client


def deploy(client: httpx.Client, endpoint: str, model: str, **options: str | int) -> httpx.Response:
    body = {"workspace": "lab", "endpoint": endpoint, "model": model, "device": "cpu", **options}
    return client.post("/v1/deployments", json=body)


def answers(client: httpx.Client, endpoint: str) -> list[dict]:
    out = []
    for colour in COLOURS:
        answer = client.post(f"/v1/endpoints/{endpoint}/predict", files={"image": photo(colour)})
        assert answer.status_code == 200, answer.text
        out.append(answer.json())
    return out


def exported(home: Path, backend: str, mode: str, model: str = "greedy@1") -> Path:
    with Services.open(home=home) as services:
        version = services.models.get("lab", model)
    return export_dir(home, version["id"], backend, mode)


def backends() -> list[str]:
    return ["onnxruntime", "openvino"]


@pytest.mark.parametrize("backend", backends())
def test_a_backend_writes_the_torch_captions_and_exports_once(
    client: httpx.Client, home: Path, backend: str
) -> None:
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed (pip install 'appliance[{backend}]')")
    for mode in ("none", "int8"):
        torch_endpoint, endpoint = f"torch-{mode}", f"{backend}-{mode}"
        if deploy(client, torch_endpoint, "greedy@1", quantization=mode).status_code != 201:
            raise AssertionError(f"torch {mode} did not deploy")
        answer = deploy(client, endpoint, "greedy@1", quantization=mode, backend=backend)
        assert answer.status_code == 201, answer.text
        assert answer.json()["backend"] == backend
        folder = exported(home, backend, mode)
        assert (folder / COMPLETE).is_file()
        expected, served = answers(client, torch_endpoint), answers(client, endpoint)
        assert [a["description"] for a in served] == [a["description"] for a in expected]
        for mine, theirs in zip(served, expected, strict=True):
            # fp32 is the same arithmetic; int8 quantizes activations in its own kernels
            tolerance = 1e-4 if mode == "none" else 0.05
            assert mine["confidence"] == pytest.approx(theirs["confidence"], abs=tolerance)

        # Deployed again (another endpoint): the export is read, not written again.
        stamp = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
        again = deploy(client, f"{endpoint}-again", "greedy@1", quantization=mode, backend=backend)
        assert again.status_code == 201, again.text
        assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamp
        assert not [p for p in folder.parent.iterdir() if p.name.startswith(".tmp-")]


def test_what_a_backend_cannot_run_is_refused_and_the_endpoint_keeps_serving(
    client: httpx.Client,
) -> None:
    assert deploy(client, "shop", "greedy@1").status_code == 201
    before = answers(client, "shop")

    refused = deploy(client, "shop", "greedy@1", backend="onnxruntime", quantization="nf4")
    assert refused.status_code == 422, refused.text
    assert "'nf4'" in refused.json()["error"] and "--backend torch" in refused.json()["error"]

    refused = deploy(client, "shop", "vit-gpt2@1", backend="onnxruntime")  # beam search
    assert refused.status_code == 422, refused.text
    assert "num_beams=2" in refused.json()["error"] and "vit-gpt2@1" in refused.json()["error"]

    refused = deploy(client, "shop", "by-recipe@1", backend="onnxruntime")
    assert refused.status_code == 422, refused.text
    message = refused.json()["error"]
    assert "by-recipe@1" in message and "recipe 'captioner'" in message, message

    unknown = deploy(client, "shop", "greedy@1", backend="tensorrt")
    assert unknown.status_code == 400 and "tensorrt" in unknown.text

    def served(rows: list[dict]) -> list[tuple[str, str, float]]:
        return [(a["model"], a["description"], a["confidence"]) for a in rows]

    assert served(answers(client, "shop")) == served(before)
    shop = next(d for d in client.get("/v1/deployments").json() if d["endpoint"] == "shop")
    assert shop["backend"] == "auto", shop


def test_auto_serves_what_no_backend_exports_and_a_named_backend_refuses_it(
    client: httpx.Client,
) -> None:
    """auto picks the measured best backend where it can run the model, else torch: never a
    refusal. Named, a backend that cannot export the architecture is refused."""
    assert deploy(client, "words", "bert-cls@1", backend="auto").status_code == 201

    words = next(d for d in client.get("/v1/deployments").json() if d["endpoint"] == "words")
    assert (words["backend"], words["serving_backend"]) == ("auto", "torch")

    refused = deploy(client, "words", "bert-cls@1", backend="onnxruntime")
    assert refused.status_code == 422, refused.text
    message = refused.json()["error"]
    assert "onnxruntime" in message and "bert-cls@1" in message and "BertConfig" in message
    assert "--backend torch" in message

    text = client.post("/v1/endpoints/words/predict", json={"text": "red leather shoe"})
    assert text.status_code == 200 and text.json()["label"], text.text


def test_auto_is_onnxruntime_for_a_captioner_it_exports(client: httpx.Client, home: Path) -> None:
    """The measured best on this kind of device (appliance/runtimes/backends/support.py)."""
    from appliance.runtimes.backends.support import MEASURED_BEST

    assert MEASURED_BEST[("cpu", "none")] == "onnxruntime"
    chosen = deploy(client, "auto-captions", "greedy-auto@1", backend="auto")
    assert chosen.status_code == 201, chosen.text
    assert (chosen.json()["backend"], chosen.json()["serving_backend"]) == ("auto", "onnxruntime")
    assert (exported(home, "onnxruntime", "none", "greedy-auto@1") / COMPLETE).is_file()
    assert deploy(client, "torch-captions", "greedy-auto@1", backend="torch").status_code == 201
    served, expected = answers(client, "auto-captions"), answers(client, "torch-captions")
    assert [a["description"] for a in served] == [a["description"] for a in expected]
    # Two process instances: each worker loads the export, and the server says what runs them.
    spread = deploy(client, "auto-workers", "greedy-auto@1", instances=2, instance_kind="process")
    assert spread.status_code == 201, spread.text
    assert [a["description"] for a in answers(client, "auto-workers")] == [
        a["description"] for a in expected
    ]
    rows = {d["endpoint"]: d for d in client.get("/v1/deployments").json()}
    assert {e: rows[e]["serving_backend"] for e in ("auto-captions", "torch-captions")} == {
        "auto-captions": "onnxruntime", "torch-captions": "torch",
    }  # fmt: skip
    assert rows["auto-workers"]["serving_backend"] == "onnxruntime"


def test_the_cli_starts_without_the_backends() -> None:
    import subprocess
    import sys

    probe = (
        "import sys; from appliance.cli import main; sys.argv = ['appliance', '--help']\n"
        "try: main()\nexcept SystemExit: pass\n"
        "print(*(m in sys.modules for m in ('onnxruntime', 'onnx', 'openvino')))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split()[-3:] == ["False", "False", "False"]


def test_a_partial_export_is_never_used(tmp_path: Path) -> None:
    from appliance.runtimes.backends.export import cached

    target = tmp_path / "exports" / "v1" / "onnxruntime-none"
    target.mkdir(parents=True)
    (target / "encoder.onnx").write_text("half written")  # no marker: not an export

    def fails(folder: Path) -> None:
        (folder / "encoder.onnx").write_text("partial")
        raise RuntimeError("killed mid-export")

    with pytest.raises(RuntimeError):
        cached(target, fails)
    assert not target.exists() and list(target.parent.iterdir()) == []

    def writes(folder: Path) -> None:
        (folder / "encoder.onnx").write_text("whole")

    assert cached(target, writes) == target
    assert (target / "encoder.onnx").read_text() == "whole" and (target / COMPLETE).is_file()
    assert cached(target, fails) == target  # complete: reused, not built again
