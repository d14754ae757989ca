"""The hf-captioner recipe (models/hf-captioner): a registered pretrained checkpoint (tiny
ViT-GPT2 and BLIP folders built here) fine-tuned through the real run launcher, with its own
tokenizer, processor and generation config carried over byte for byte, its lineage recorded, its
loss going down, and its held-out scores those of the Hugging Face runtime that serves it."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest
import torch

from appliance.datasets.synthetic import generate
from appliance.models.intake import register_folder
from appliance.recipes.catalog import builtin_recipes, copy_recipe, load_module
from appliance.recipes.context import SilentReporter, TrainContext
from appliance.runs.launcher import start_run
from appliance.services import Services
from appliance.testing.hf_folders import build

RECIPE = Path(__file__).resolve().parents[1] / "models" / "hf-captioner"
KINDS = ("vit-gpt2", "blip")
# What the base's tokenizer and processor are made of; each present one must be carried over.
CARRIED = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "special_tokens_map.json",
    "preprocessor_config.json",
    "processor_config.json",
    "generation_config.json",
)
PARAMS = {"epochs": 2, "lr": 1e-3, "batch_size": 8, "threads": 1}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hf-captioner")
    home = root / "home"
    with Services.open(home=home) as services:
        services.workspaces.create("ads")
        photos = generate(root / "photos", count=40, seed=4, low_light_fraction=0.2, size=32)
        services.datasets.add("ads", "photos", photos.path)
        for kind in KINDS:
            # The load-and-predict check at register is tested elsewhere and costs seconds.
            register_folder(services, "ads", kind, build(kind, root / kind), check=False)
    return home


@pytest.fixture(scope="module")
def recipe() -> ModuleType:
    return load_module(builtin_recipes()["hf-captioner"])


@pytest.mark.parametrize("kind", KINDS)
def test_fine_tunes_a_registered_checkpoint_through_a_run(home: Path, kind: str) -> None:
    with Services.open(home=home) as services:
        params = {**PARAMS, "base_model": f"{kind}@1"}
        run = start_run(services, "ads", "hf-captioner", "photos", params).wait()
        assert run["status"] == "succeeded", run["error"]
        base = services.models.get("ads", f"{kind}@1")
        tuned = services.models.by_run(run["id"])
        assert tuned is not None and tuned["name"] == "hf-captioner"
        assert run["parent_model_version_id"] == base["id"]
        assert tuned["parent_version_id"] == base["id"]
        base_dir, tuned_dir = services.models.folder(base), services.models.folder(tuned)
        metrics = services.runs.metrics(run["id"])
        log = Path(run["log_path"]).read_text()

    # The base's own tokenizer, processor and generation config: the same bytes, nothing added.
    carried = [name for name in CARRIED if (base_dir / name).exists()]
    assert "tokenizer.json" in carried and "tokenizer_config.json" in carried
    for name in carried:
        assert (tuned_dir / name).read_bytes() == (base_dir / name).read_bytes(), name
    assert (tuned_dir / "model.safetensors").exists()
    assert not list(tuned_dir.glob("*.bin"))
    config = json.loads((tuned_dir / "config.json").read_text())
    assert (
        config["architectures"]
        == json.loads((base_dir / "config.json").read_text())["architectures"]
    )
    # Fine-tuned, not copied: the weights moved.
    from safetensors.torch import load_file

    before, after = (
        load_file(base_dir / "model.safetensors"),
        load_file(tuned_dir / "model.safetensors"),
    )
    assert before.keys() == after.keys()
    assert not all(torch.equal(before[k], after[k]) for k in before)

    # The held-out scores of the served model, and a training loss that went down.
    assert {"exact_match", "bleu"} <= set(tuned["metrics"])
    assert 0.0 <= tuned["metrics"]["exact_match"] <= 1.0 and tuned["metrics"]["bleu"] >= 0.0
    epochs = [point["value"] for point in metrics["epoch_loss"]]
    losses = [point["value"] for point in metrics["loss"]]
    assert len(epochs) == 2 and epochs[-1] < epochs[0]
    assert losses[-1] < losses[0]
    assert "its tokenizer as it is" in log and "evaluated" in log


def test_is_a_builtin_recipe_that_copies(tmp_path: Path) -> None:
    spec = builtin_recipes()["hf-captioner"]
    assert spec.task == "image-to-text" and spec.gate.metric == "bleu"
    assert spec.resolve_params({})["base_model"] == ""
    copy = copy_recipe(spec, tmp_path / "my-captioner")  # `appliance new X --from hf-captioner`
    assert copy.name == "my-captioner" and (copy.folder / "hf_families.py").exists()
    assert callable(load_module(copy).load)


def test_without_a_base_model_it_says_what_to_give(recipe: ModuleType, tmp_path: Path) -> None:
    ctx = TrainContext(
        dataset_dir=tmp_path,
        train_rows=[{"file_name": "a.png", "text": "a"}],
        eval_rows=[],
        params={},
        output_dir=tmp_path / "out",
        seed=0,
        report=SilentReporter(),
    )
    with pytest.raises(ValueError, match="base_model=NAME@VERSION"):
        recipe.train(ctx)


def test_precision_float32_on_cpu_unless_asked(recipe: ModuleType) -> None:
    cpu = torch.device("cpu")
    assert not isinstance(recipe.autocast("auto", cpu), torch.autocast)
    assert not isinstance(recipe.autocast("fp32", cpu), torch.autocast)
    bf16 = recipe.autocast("bf16", cpu)
    assert isinstance(bf16, torch.autocast) and bf16.fast_dtype == torch.bfloat16
    with pytest.raises(ValueError, match="precision must be one of"):
        recipe.autocast("fp16", cpu)
