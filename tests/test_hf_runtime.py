"""The Hugging Face runtime over real HTTP: every supported architecture, built from a small
config with a locally trained tokenizer and saved with save_pretrained (appliance.testing.
hf_folders), registers without a recipe (task and class read from config.json), deploys in
none, bf16 and int8 on CPU and answers; a captioner's served description is what
`model.generate()` writes for the same image with the folder's own generation config."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image
from serving_harness import running_server, wait_ready

from appliance.errors import InvalidInput
from appliance.models.intake import inspect_folder, register_folder
from appliance.services import Services
from appliance.testing.hf_folders import KINDS, build

TASKS = {
    "vit-gpt2": "image-to-text", "deit-gpt2": "image-to-text", "swin-gpt2": "image-to-text",
    "vit-bert": "image-to-text", "vit-roberta": "image-to-text", "blip": "image-to-text",
    "git": "image-to-text", "pix2struct": "image-to-text",
    "llava": "image-text-to-text", "idefics3": "image-text-to-text",
    "bert-cls": "text-classification", "distilbert-cls": "text-classification",
    "roberta-cls": "text-classification",
    "vit-cls": "image-classification", "convnext-cls": "image-classification",
    "resnet-cls": "image-classification",
}  # fmt: skip
CAPTIONERS = [k for k, t in TASKS.items() if t in ("image-to-text", "image-text-to-text")]
MODES = ("none", "bf16", "int8")


def photo(colour: str = "red", size: tuple[int, int] = (48, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def test_every_kind_is_covered() -> None:
    assert set(TASKS) == set(KINDS)


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf-folders")
    return {kind: build(kind, root / kind) for kind in TASKS}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, folders: dict[str, Path]) -> Path:
    """Every kind registered. The load-and-predict check runs in a child for one kind of each
    task (each child imports torch and transformers: seconds); the others are registered with
    the same detection, and their serving is what the tests below check."""
    home = tmp_path_factory.mktemp("hf-home")
    checked = {"vit-roberta", "llava", "distilbert-cls", "convnext-cls"}
    with Services.open(home=home) as services:
        services.workspaces.create("lab")
        for kind, folder in folders.items():
            row = register_folder(services, "lab", kind, folder, check=kind in checked)
            assert row["runtime"] == "huggingface" and row["task"] == TASKS[kind], kind
            if kind in checked:
                assert row["info"]["check"]["seconds"] > 0, row["info"]
    return home


@pytest.fixture(scope="module")
def client(home: Path) -> Iterator[httpx.Client]:
    with Services.open(home=home) as services, running_server(services) as client:
        wait_ready(client)
        yield client


def deploy(client: httpx.Client, kind: str, mode: str) -> str:
    endpoint = f"{kind}-{mode}"
    body = {"workspace": "lab", "endpoint": endpoint, "model": f"{kind}@1",
            "quantization": mode, "device": "cpu"}  # fmt: skip
    answer = client.post("/v1/deployments", json=body)
    assert answer.status_code == 201, answer.text
    return endpoint


def predict(client: httpx.Client, endpoint: str, kind: str) -> dict:
    task = TASKS[kind]
    if task == "text-classification":
        answer = client.post(
            f"/v1/endpoints/{endpoint}/predict", json={"text": "red leather shoe, like new"}
        )
    elif task == "image-classification":
        answer = client.post(f"/v1/endpoints/{endpoint}/predict", files={"image": photo()})
    else:
        answer = client.post(
            f"/v1/endpoints/{endpoint}/predict",
            files={"image": photo()}, data={"keywords": "leather, size 42"},
        )  # fmt: skip
    assert answer.status_code == 200, (kind, answer.text)
    return answer.json()


@pytest.mark.parametrize("kind", list(TASKS))
def test_each_kind_serves_in_every_cpu_mode(client: httpx.Client, kind: str) -> None:
    for mode in MODES:
        body = predict(client, deploy(client, kind, mode), kind)
        assert 0 <= body["confidence"] <= 1, body
        if TASKS[kind].endswith("classification"):
            assert body["label"] in body["scores"] and body["confidence"] == max(
                body["scores"].values()
            )
        else:
            text = body["description"]
            assert text and "<unk>" not in text and "[UNK]" not in text, (kind, mode, body)


@pytest.mark.parametrize("kind", CAPTIONERS)
def test_served_description_is_what_generate_writes(
    client: httpx.Client, folders: dict[str, Path], kind: str
) -> None:
    """The served text for an image equals `generate()` with the folder's own generation
    config on that image (no keywords for a captioner; the runtime's prompt for a VLM)."""
    import torch
    import transformers

    folder = folders[kind]
    endpoint = deploy(client, kind, "none")
    image = Image.open(io.BytesIO(photo("navy", (64, 48)))).convert("RGB")
    served = client.post(
        f"/v1/endpoints/{endpoint}/predict",
        json={"image": base64.b64encode(photo("navy", (64, 48))).decode()},
    ).json()["description"]

    model = transformers.AutoModelForImageTextToText.from_pretrained(folder).eval()
    if TASKS[kind] == "image-text-to-text":
        from appliance.runtimes.huggingface.generation import PromptedCaptions

        processor = transformers.AutoProcessor.from_pretrained(folder)
        prompted = PromptedCaptions(model, processor, "cpu")
        inputs = processor(images=[[image]], text=[prompted.prompt(None)], return_tensors="pt")
        start = inputs["input_ids"].shape[1]
        tokenizer = processor.tokenizer
    elif kind.startswith(("vit-", "deit-", "swin-")):
        processor = transformers.AutoImageProcessor.from_pretrained(folder)
        inputs, start = processor(images=[image], return_tensors="pt"), 0
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    else:
        processor = transformers.AutoProcessor.from_pretrained(folder)
        inputs, start = processor(images=[image], return_tensors="pt"), 0
        tokenizer = processor.tokenizer
    with torch.inference_mode():
        sequences = model.generate(**inputs, generation_config=model.generation_config)
    expected = tokenizer.batch_decode(sequences[:, start:], skip_special_tokens=True)[0].strip()
    assert expected, f"{kind}: generate() wrote nothing; the fixture should make it write text"
    assert served == expected, kind


def test_oip_metadata_names_the_task_fields(client: httpx.Client) -> None:
    endpoint = deploy(client, "vit-cls", "none")
    meta = client.get(f"/v2/models/{endpoint}").json()
    assert [i["name"] for i in meta["inputs"]] == ["image"]
    assert [o["name"] for o in meta["outputs"]] == ["label", "confidence"]
    assert meta["platform"] == "transformers"
    assert meta["parameters"]["task"] == "image-classification"
    assert meta["parameters"]["architecture"] == "ViTForImageClassification"
    assert (
        meta["parameters"]["parameter_count"] > 0 and meta["parameters"]["quantization"] == "none"
    )


def test_detection_refuses_what_no_runtime_serves(tmp_path: Path) -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    GPT2LMHeadModel(GPT2Config(n_embd=8, n_layer=1, n_head=2, vocab_size=64)).save_pretrained(
        tmp_path / "lm"
    )
    with pytest.raises(InvalidInput) as refused:
        inspect_folder(tmp_path / "lm", None, None)
    message = str(refused.value)
    assert "GPT2LMHeadModel" in message and "--recipe" in message and "BlipFor" in message


def test_task_override_must_fit_the_architecture(folders: dict[str, Path]) -> None:
    assert inspect_folder(folders["llava"], None, "image-to-text").task == "image-to-text"
    with pytest.raises(InvalidInput, match="serves image-classification, not 'image-to-text'"):
        inspect_folder(folders["vit-cls"], None, "image-to-text")
    with pytest.raises(InvalidInput, match="unknown task"):
        inspect_folder(folders["vit-cls"], None, "painting")


def test_a_hot_swap_keeps_the_endpoints_task(client: httpx.Client) -> None:
    endpoint = deploy(client, "bert-cls", "none")
    swap = {"workspace": "lab", "endpoint": endpoint, "model": "blip@1", "device": "cpu"}
    refused = client.post("/v1/deployments", json=swap)
    assert refused.status_code == 409, refused.text
    assert "serves text-classification" in refused.json()["error"]
    assert predict(client, endpoint, "bert-cls")["model"] == "bert-cls"  # still serving


def test_deploy_refuses_fields_it_does_not_know(client: httpx.Client) -> None:
    body = {"workspace": "lab", "endpoint": "x", "model": "bert-cls@1", "recipe": "captioner"}
    refused = client.post("/v1/deployments", json=body)
    assert refused.status_code == 400, refused.text
    assert "recipe" in refused.text


def test_a_folder_that_cannot_load_is_refused_at_register(
    tmp_path: Path, folders: dict[str, Path]
) -> None:
    """The check loads the folder in a child: weights that do not fit their config are refused
    at register with the reason, and nothing is registered."""
    import json
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(folders["bert-cls"], broken)
    config = json.loads((broken / "config.json").read_text())
    config["hidden_size"] *= 2  # the saved weights are half as wide
    (broken / "config.json").write_text(json.dumps(config))
    with Services.open(home=tmp_path / "home") as services:
        services.workspaces.create("lab")
        with pytest.raises(InvalidInput, match="cannot be served") as refused:
            register_folder(services, "lab", "broken", broken)
        assert "size" in str(refused.value).lower() or "shape" in str(refused.value).lower()
        assert services.models.list("lab") == []


def test_a_vlm_registered_as_image_to_text_answers_without_keywords(
    folders: dict[str, Path],
) -> None:
    from appliance.runtimes.huggingface.detect import detect
    from appliance.runtimes.huggingface.runtime import load_predictor

    image = Image.open(io.BytesIO(photo())).convert("RGB")
    plain = load_predictor(
        folders["llava"], detect(folders["llava"], "image-to-text"), "cpu", "none"
    )
    prompted = load_predictor(folders["llava"], detect(folders["llava"]), "cpu", "none")
    assert plain.prompt(None) == prompted.prompt(None)
    ((text, confidence, _),) = plain.predict([image], ["leather, size 42"])
    assert text and 0 < confidence <= 1
    assert plain.predict([image], ["leather, size 42"]) == plain.predict([image], None)
