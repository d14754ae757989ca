"""The text-classifier recipe (models/text-classifier): real generated ads, real training, held-out
accuracy, a plain Hugging Face folder, quantized loading, reproducibility, fine-tuning onto a new
category, metrics, and `appliance new --from text-classifier`."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch
from click.testing import CliRunner
from transformers import AutoTokenizer

from appliance.cli import cli
from appliance.datasets.ad_text import CATEGORIES, generate
from appliance.recipes.catalog import builtin_recipes, load_module
from appliance.recipes.context import EvalContext, SilentReporter, TrainContext
from appliance.recipes.spec import read_recipe
from appliance.recipes.split import is_held_out
from appliance.serving.quantize import QuantizationUnsupported

RECIPE = Path(__file__).resolve().parents[1] / "models" / "text-classifier"


@pytest.fixture(scope="module")
def recipe() -> Iterator[ModuleType]:
    # One thread: a tiny model gains nothing from a second, and on a busy machine a thread team
    # waits for its slowest member.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield load_module(read_recipe(RECIPE))
    torch.set_num_threads(threads)


def _rows(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]


def _train(recipe, data: Path, rows: list[dict], out: Path, seed: int = 0, **params) -> Path:
    recipe.train(TrainContext(data, rows, [], params, out, seed, report=SilentReporter()))
    return out


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


@pytest.fixture(scope="module")
def ads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("ads") / "ads", count=1000, seed=0).path


@pytest.fixture(scope="module")
def unseen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ads from another seed: never trained on."""
    return generate(tmp_path_factory.mktemp("ads") / "unseen", count=400, seed=77).path


@pytest.fixture(scope="module")
def trained(recipe, ads: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    train_rows = [row for row in _rows(ads) if not is_held_out(row["id"])]
    return _train(recipe, ads, train_rows, tmp_path_factory.mktemp("clf") / "model")


def test_training_reaches_the_held_out_accuracy_bar(recipe, ads: Path, unseen: Path, trained):
    held_out = [row for row in _rows(ads) if is_held_out(row["id"])]
    for data, rows in ((ads, held_out), (unseen, _rows(unseen))):
        metrics = recipe.evaluate(EvalContext(trained, data, rows, {}, SilentReporter()))
        assert metrics["accuracy"] >= 0.9 and metrics["macro_f1"] >= 0.9, metrics
        labels = {row["label"] for row in rows}
        assert set(metrics) == {"accuracy", "macro_f1"} | {f"acc_{label}" for label in labels}
        assert all(0.0 <= v <= 1.0 for v in metrics.values())


def test_the_folder_is_plain_hugging_face(recipe, unseen: Path, trained: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    assert (trained / "model.safetensors").is_file() and not list(trained.glob("*.bin"))
    model = AutoModelForSequenceClassification.from_pretrained(trained).eval()
    tokenizer = AutoTokenizer.from_pretrained(trained)
    texts = [recipe.ad_input(row) for row in _rows(unseen)[:96]]
    with torch.inference_mode():
        batch = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
        ids = model(**batch).logits.argmax(-1).tolist()
    plain = [model.config.id2label[i] for i in ids]
    ours = recipe.load(trained).predict(texts)
    assert plain == [label for label, *_ in ours]
    assert model.config.label2id == {label: i for i, label in model.config.id2label.items()}


def test_predict_gives_a_label_and_a_probability_per_label(recipe, trained: Path) -> None:
    classifier = recipe.load(trained)
    long_ad = "Selling my blue coffee mug, dishwasher safe. " * 200  # past max_length
    texts = ["Brand new hardcover, 320 pages, signed by the author.", long_ad, ""]
    answers = classifier.predict(texts)
    assert [label for label, *_ in answers[:2]] == ["book", "mug"]
    for label, scores, extras in answers:
        assert set(scores) == set(classifier.labels) and len(scores) == 8
        assert abs(sum(scores.values()) - 1.0) < 1e-4 and max(scores, key=scores.get) == label
        assert len(extras["embedding"]) == classifier.model.config.hidden_size
    one_by_one = [classifier.predict([text])[0][0] for text in texts]
    assert one_by_one == [label for label, *_ in answers]
    assert classifier.predict([]) == []


def test_int8_and_bf16_agree_and_impossible_modes_raise(recipe, unseen: Path, trained: Path):
    texts = [recipe.ad_input(row) for row in _rows(unseen)]
    full = [label for label, *_ in recipe.load(trained).predict(texts)]
    for mode in ("int8", "bf16"):
        quantized = [label for label, *_ in recipe.load(trained, quantization=mode).predict(texts)]
        agree = sum(a == b for a, b in zip(full, quantized, strict=True)) / len(texts)
        assert agree >= 0.95, (mode, agree)
    with pytest.raises(QuantizationUnsupported, match="fp16"):
        recipe.load(trained, quantization="fp16")
    if not torch.cuda.is_available():
        with pytest.raises(QuantizationUnsupported, match="no CUDA GPU"):
            recipe.load(trained, device="cuda")


def test_same_seed_same_weights_another_seed_not(recipe, ads: Path, tmp_path: Path) -> None:
    rows = _rows(ads)[:240]
    a, b, c = (
        _train(recipe, ads, rows, tmp_path / name, seed=seed, epochs=1)
        for name, seed in (("a", 0), ("b", 0), ("c", 1))
    )
    assert _digests(a) == _digests(b)
    assert _digests(a)["model.safetensors"] != _digests(c)["model.safetensors"]
    assert _digests(a)["tokenizer.json"] == _digests(c)["tokenizer.json"]  # counted, not sampled


def test_fine_tuning_adds_a_new_category(recipe, trained: Path, tmp_path: Path) -> None:
    data = generate(tmp_path / "cars", count=450, seed=5, categories=CATEGORIES).path
    out = _train(recipe, data, _rows(data), tmp_path / "tuned", epochs=4, base_model=str(trained))
    fresh = generate(tmp_path / "more", count=450, seed=78, categories=CATEGORIES).path
    metrics = recipe.evaluate(EvalContext(out, fresh, _rows(fresh), {}, SilentReporter()))
    # The car row starts imprinted, not random: at random, this short a fine-tuning got 0-90%.
    assert metrics["acc_car"] >= 0.8 and metrics["accuracy"] >= 0.9, metrics
    assert recipe.load(out).labels == sorted(CATEGORIES)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert "hatchback" in tokenizer.get_vocab()  # the new category's words joined the vocabulary
    assert tokenizer.get_vocab()["mug"] == AutoTokenizer.from_pretrained(trained).get_vocab()["mug"]


def test_score_counts_accuracy_macro_f1_and_per_label_accuracy(recipe) -> None:
    rows = [{"label": label} for label in ("mug", "mug", "hat", "hat")]
    metrics = recipe.score(["mug", "hat", "hat", "car"], rows)
    assert metrics["accuracy"] == 0.5
    assert metrics["acc_mug"] == 0.5 and metrics["acc_hat"] == 0.5 and "acc_car" not in metrics
    # F1: mug 2/3, hat 1/2, car 0 (predicted, never right).
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)


def test_appliance_new_copies_the_recipe(tmp_path: Path) -> None:
    assert builtin_recipes()["text-classifier"].task == "text-classification"
    target = tmp_path / "ad-router"
    result = CliRunner().invoke(cli, ["new", str(target), "--from", "text-classifier"])
    assert result.exit_code == 0, result.output
    spec = read_recipe(target)
    assert (spec.name, spec.task, spec.gate.metric) == (
        "ad-router",
        "text-classification",
        "accuracy",
    )
    assert spec.gate.direction == "higher" and all(p.help for p in spec.params.values())
    assert callable(load_module(spec).load)
