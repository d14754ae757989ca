"""The Hugging Face model folders of appliance.testing.hf_folders: every tiny kind loads from its
folder alone with the Auto classes its family uses, and runs on one real input."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image, ImageDraw
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModelForCausalLM,
    AutoModelForImageClassification,
    AutoModelForImageTextToText,
    AutoModelForSequenceClassification,
    AutoProcessor,
    AutoTokenizer,
    GenerationConfig,
)

from appliance.testing import hf_folders
from appliance.testing.hf_folders import BASE_KINDS, KINDS, LABELS, MAX_NEW_TOKENS, build

ENCODER_DECODER = ("vit-gpt2", "deit-gpt2", "swin-gpt2", "vit-bert", "vit-roberta")
PROCESSOR_CAPTIONERS = ("blip", "pix2struct")
VLMS = ("llava", "idefics3")
TEXT_CLASSIFIERS = ("bert-cls", "distilbert-cls", "roberta-cls")
IMAGE_CLASSIFIERS = ("vit-cls", "convnext-cls", "resnet-cls")
GENERATORS = (*ENCODER_DECODER, *PROCESSOR_CAPTIONERS, "git", *VLMS)

LOCAL: dict[str, Any] = {"local_files_only": True}


def test_the_kinds_are_the_ones_tested() -> None:
    assert set(KINDS) == {*GENERATORS, *TEXT_CLASSIFIERS, *IMAGE_CLASSIFIERS}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Each kind built once for the module, on first use."""
    built: dict[str, Path] = {}

    def get(kind: str) -> Path:
        if kind not in built:
            built[kind] = build(kind, tmp_path_factory.mktemp(kind))
        return built[kind]

    return get


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    """A product photo: a red shoe-ish shape on a white background, not square."""
    image = Image.new("RGB", (56, 40), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle((8, 18, 44, 32), fill=(200, 30, 30))
    draw.ellipse((30, 10, 48, 30), fill=(150, 20, 20))
    return image


def _generate(model: Any, **inputs: Any) -> torch.Tensor:
    with torch.inference_mode():
        return model.generate(**inputs)


@pytest.mark.parametrize("kind", list(KINDS))
def test_folder_is_safetensors_only(folder: Callable[[str], Path], kind: str) -> None:
    path = folder(kind)
    names = {p.name for p in path.iterdir()}
    assert "config.json" in names
    assert "model.safetensors" in names or "model.safetensors.index.json" in names
    assert hf_folders.pickles_in(path) == []
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pth", ".pkl", ".pickle"))]
    assert ("generation_config.json" in names) == (kind in GENERATORS)


@pytest.mark.parametrize("kind", ENCODER_DECODER)
def test_vision_encoder_decoder_captions(
    folder: Callable[[str], Path], photo: Image.Image, kind: str
) -> None:
    path = folder(kind)
    assert AutoConfig.from_pretrained(path, **LOCAL).model_type == "vision-encoder-decoder"
    image_processor = AutoImageProcessor.from_pretrained(path, **LOCAL)
    tokenizer = AutoTokenizer.from_pretrained(path, **LOCAL)
    model = AutoModelForImageTextToText.from_pretrained(path, **LOCAL).eval()
    assert type(model).__name__ == "VisionEncoderDecoderModel"
    # The ids agree: config, decoder, generation config and tokenizer.
    generation = GenerationConfig.from_pretrained(path, **LOCAL)
    assert model.config.decoder.vocab_size == len(tokenizer)
    eos = tokenizer.sep_token_id if kind == "vit-bert" else tokenizer.eos_token_id  # BERT: [SEP]
    assert generation.eos_token_id == eos == model.config.eos_token_id
    assert generation.decoder_start_token_id == model.config.decoder_start_token_id
    assert generation.max_new_tokens == MAX_NEW_TOKENS["tiny"]
    pixel_values = image_processor(images=photo, return_tensors="pt").pixel_values
    ids = _generate(model, pixel_values=pixel_values)
    text = tokenizer.decode(ids[0], skip_special_tokens=True).strip()
    assert text, ids
    assert ids.shape[1] == 1 + MAX_NEW_TOKENS["tiny"]  # the start token, then never eos


def test_encoder_decoder_token_conventions(folder: Callable[[str], Path]) -> None:
    """The traps a runtime must honour: vit-gpt2 beam-searches, TrOCR starts from </s>."""
    gpt2 = GenerationConfig.from_pretrained(folder("vit-gpt2"), **LOCAL)
    assert gpt2.num_beams == 2
    assert gpt2.decoder_start_token_id == gpt2.bos_token_id == gpt2.eos_token_id
    trocr = folder("vit-roberta")
    tokenizer = AutoTokenizer.from_pretrained(trocr, **LOCAL)
    generation = GenerationConfig.from_pretrained(trocr, **LOCAL)
    specials = (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token)
    assert specials == ("<s>", "</s>", "<pad>")
    assert generation.decoder_start_token_id == tokenizer.eos_token_id != tokenizer.bos_token_id
    assert type(AutoProcessor.from_pretrained(trocr, **LOCAL)).__name__ == "TrOCRProcessor"
    bert = GenerationConfig.from_pretrained(folder("vit-bert"), **LOCAL)
    bert_tokenizer = AutoTokenizer.from_pretrained(folder("vit-bert"), **LOCAL)
    assert bert.decoder_start_token_id == bert_tokenizer.cls_token_id
    assert bert.eos_token_id == bert_tokenizer.sep_token_id


# BLIP's text decoder warns that it falls back on max_length=20 when generation_config is not passed.
@pytest.mark.filterwarnings("ignore:Using the model-agnostic default `max_length`")
@pytest.mark.parametrize("kind", PROCESSOR_CAPTIONERS)
def test_processor_captioners_caption(
    folder: Callable[[str], Path], photo: Image.Image, kind: str
) -> None:
    path = folder(kind)
    processor = AutoProcessor.from_pretrained(path, **LOCAL)
    model = AutoModelForImageTextToText.from_pretrained(path, **LOCAL).eval()
    expected = {
        "blip": "BlipForConditionalGeneration",
        "pix2struct": "Pix2StructForConditionalGeneration",
    }
    assert type(model).__name__ == expected[kind]
    inputs = processor(images=photo, return_tensors="pt")
    ids = _generate(model, **inputs)
    assert processor.decode(ids[0], skip_special_tokens=True).strip(), ids
    # BlipForConditionalGeneration.generate hands over to its text decoder, whose own generation
    # config ignores generation_config.json unless it is passed: a runtime must pass it.
    ids = _generate(model, **inputs, generation_config=model.generation_config)
    assert ids.shape[1] == 1 + MAX_NEW_TOKENS["tiny"]  # the start token, then never eos


def test_git_captions(folder: Callable[[str], Path], photo: Image.Image) -> None:
    path = folder("git")
    processor = AutoProcessor.from_pretrained(path, **LOCAL)
    assert type(processor).__name__ == "GitProcessor"
    config = AutoConfig.from_pretrained(path, **LOCAL)
    # The image size of the config and of the processor agree.
    crop = processor.image_processor.crop_size
    assert crop["height"] == crop["width"] == config.vision_config.image_size
    model = AutoModelForCausalLM.from_pretrained(path, **LOCAL).eval()
    pixel_values = processor(images=photo, return_tensors="pt").pixel_values
    ids = _generate(model, pixel_values=pixel_values)
    assert processor.batch_decode(ids, skip_special_tokens=True)[0].strip(), ids


@pytest.mark.parametrize("kind", VLMS)
def test_vlms_answer_a_chat_prompt(
    folder: Callable[[str], Path], photo: Image.Image, kind: str
) -> None:
    path = folder(kind)
    processor = AutoProcessor.from_pretrained(path, **LOCAL)
    model = AutoModelForImageTextToText.from_pretrained(path, **LOCAL).eval()
    messages = [
        {
            "role": "user",
            "content": [{"type": "image"}, {"type": "text", "text": "What is for sale?"}],
        }
    ]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    assert "What is for sale?" in prompt and "<image>" in prompt
    inputs = processor(images=[photo], text=prompt, return_tensors="pt")
    image_token = model.config.image_token_id
    assert (inputs.input_ids == image_token).sum() > 1  # the processor expanded <image>
    ids = _generate(model, **inputs)
    new = ids[0, inputs.input_ids.shape[1] :]
    assert len(new) == MAX_NEW_TOKENS["tiny"]
    assert processor.decode(new, skip_special_tokens=True).strip(), new


@pytest.mark.parametrize("kind", TEXT_CLASSIFIERS)
def test_text_classifiers_label(folder: Callable[[str], Path], kind: str) -> None:
    path = folder(kind)
    tokenizer = AutoTokenizer.from_pretrained(path, **LOCAL)
    model = AutoModelForSequenceClassification.from_pretrained(path, **LOCAL).eval()
    assert model.config.vocab_size == len(tokenizer)
    assert model.config.pad_token_id == tokenizer.pad_token_id
    assert set(model.config.label2id) == set(LABELS)
    texts = ["a red leather shoe on a white background", "Used laptop for sale. " * 40]
    inputs = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    assert inputs.input_ids.shape[1] <= tokenizer.model_max_length
    with torch.inference_mode():
        logits = model(**inputs).logits
    assert logits.shape == (2, len(LABELS))
    assert model.config.id2label[int(logits[0].argmax())] in LABELS


@pytest.mark.parametrize("kind", IMAGE_CLASSIFIERS)
def test_image_classifiers_label(
    folder: Callable[[str], Path], photo: Image.Image, kind: str
) -> None:
    path = folder(kind)
    image_processor = AutoImageProcessor.from_pretrained(path, **LOCAL)
    model = AutoModelForImageClassification.from_pretrained(path, **LOCAL).eval()
    with torch.inference_mode():
        logits = model(**image_processor(images=photo, return_tensors="pt")).logits
    assert logits.shape == (1, len(LABELS))
    assert model.config.id2label[int(logits[0].argmax())] in LABELS


def _digest(path: Path) -> str:
    return hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()


def test_a_build_is_deterministic(folder: Callable[[str], Path], tmp_path: Path) -> None:
    again = build("vit-gpt2", tmp_path / "again")
    assert _digest(again) == _digest(folder("vit-gpt2"))
    tokenizer = (again / "tokenizer.json").read_text()
    assert tokenizer == (folder("vit-gpt2") / "tokenizer.json").read_text()
    other = build("vit-gpt2", tmp_path / "other", seed=1)
    assert _digest(other) != _digest(again)


def test_refusals(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown kind"):
        build("gpt5", tmp_path / "a")
    with pytest.raises(ValueError, match="no base size"):
        build("bert-cls", tmp_path / "b", size="base")
    with pytest.raises(ValueError, match="unknown size"):
        build("vit-gpt2", tmp_path / "c", size="huge")
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("x")
    with pytest.raises(FileExistsError):
        build("vit-cls", full)
    assert {"vit-gpt2", "blip", "idefics3"} == BASE_KINDS


def test_configs_are_plain_json(folder: Callable[[str], Path]) -> None:
    """The processor's and tokenizer's files say which classes to load, as the Hub's do."""
    tokenizer_config = json.loads((folder("llava") / "tokenizer_config.json").read_text())
    assert "<image>" in json.dumps(tokenizer_config)
    processor_config = json.loads((folder("idefics3") / "processor_config.json").read_text())
    assert processor_config["processor_class"] == "Idefics3Processor"
