"""The hf-captioner recipe: fine-tunes a pretrained Hugging Face image-to-text checkpoint
(VisionEncoderDecoder, BLIP, GIT, Pix2Struct) on an imagefolder of photos and descriptions, with
the checkpoint's own tokenizer, processor and generation config, untouched. Evaluation and
serving both go through the Hugging Face runtime, so the held-out score is what a deployment
answers."""

from __future__ import annotations

import contextlib
import math
import random
import shutil
import time
import tomllib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from appliance.recipes.context import EvalContext, TrainContext
from appliance.runtimes.huggingface.detect import IMAGE_TO_TEXT, detect
from appliance.tasks.scoring import text_scores

from .hf_families import family

_HERE = Path(__file__).resolve().parent

PRECISIONS = ("auto", "fp32", "bf16")
# Files of the base folder that are not copied into the fine-tuned one: save_pretrained writes
# the config and the new weights; pickles are never carried (the registry refuses them).
NOT_COPIED_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".h5")
NOT_COPIED = {"config.json", "model.safetensors.index.json", "README.md"}


def defaults() -> dict[str, Any]:
    """recipe.toml's param defaults, so a hand-made context may give only what it changes."""
    toml = tomllib.loads((_HERE / "recipe.toml").read_text("utf-8"))
    return {name: spec["default"] for name, spec in toml["params"].items()}


def open_rgb(dataset_dir: Path, row: dict[str, Any]) -> Image.Image:
    # Grey or RGBA photos as RGB: ViT-style image processors do not convert them.
    with Image.open(Path(dataset_dir) / row["file_name"]) as im:
        return im.convert("RGB")


def base_folder(ctx: TrainContext, params: dict[str, Any]) -> Path:
    """The checkpoint to fine-tune: the pipeline resolves `base_model` (NAME@VERSION or a
    folder) into ctx.base_model; by hand, `base_model` may be a folder."""
    if ctx.base_model is not None:
        return Path(ctx.base_model)
    if params.get("base_model"):
        return Path(params["base_model"])
    raise ValueError(
        "hf-captioner fine-tunes a pretrained checkpoint: give --param base_model=NAME@VERSION "
        "(a registered image-to-text version) or a local Hugging Face folder"
    )


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on CUDA where the GPU supports it ("auto"); float32 on CPU unless asked
    for bf16. Weights, optimizer state and the saved folder stay float32 either way."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    if precision == "bf16" and device.type == "cuda" and not cuda_bf16:
        raise ValueError(f"{device} does not support bf16; use precision=fp32")
    if precision == "bf16" or (precision == "auto" and cuda_bf16):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _batches(n: int, size: int, rng: random.Random) -> Iterator[list[int]]:
    order = list(range(n))
    rng.shuffle(order)
    for start in range(0, n, size):
        yield order[start : start + size]


def train(ctx: TrainContext) -> None:
    from appliance.runtimes.huggingface.runtime import load_model

    params = {**defaults(), **ctx.params}
    started = time.perf_counter()
    if params["threads"] > 0:
        torch.set_num_threads(params["threads"])
    torch.manual_seed(ctx.seed)
    rng = random.Random(ctx.seed)
    base = base_folder(ctx, params)
    detected = detect(base, IMAGE_TO_TEXT)
    model = load_model(base, detected)
    feed = family(detected.architecture, base, model)
    for note in getattr(feed, "notes", []):
        ctx.report.log(f"note: {note}")
    device = torch.device(params["device"])
    precision = autocast(params["precision"], device)
    model.to(device).train()
    n_params = sum(p.numel() for p in model.parameters())
    ctx.report.log(
        f"fine-tuning {detected.architecture} ({detected.model_type}, {n_params / 1e6:.2f}M "
        f"parameters) from {base}; its tokenizer as it is ({len(feed.tokenizer)} tokens)"
    )

    rows = ctx.train_rows[: params["max_rows"]] if params["max_rows"] > 0 else ctx.train_rows
    if not rows:
        raise ValueError("no training rows")
    images = [open_rgb(ctx.dataset_dir, row) for row in rows]
    texts = [str(row["text"]) for row in rows]
    batch_size = max(1, min(params["batch_size"], len(rows)))
    per_epoch = math.ceil(len(rows) / batch_size)
    total = params["epochs"] * per_epoch
    every = max(1, total // 200)  # at most ~200 progress points, every step for short runs
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=params["lr"], weight_decay=params["weight_decay"]
    )
    ctx.report.log(
        f"{len(rows)} photos, {params['epochs']} epochs of {per_epoch} steps, "
        f"precision {_precision_name(precision)} on {device}"
    )

    step = 0
    for epoch in range(params["epochs"]):
        losses = []
        for idx in _batches(len(rows), batch_size, rng):
            inputs = feed.batch([images[i] for i in idx], [texts[i] for i in idx])
            inputs = {k: v.to(device) for k, v in inputs.items()}
            with precision:
                loss = model(**inputs).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            step += 1
            losses.append(float(loss.item()))
            if step % every == 0 or step == total:
                ctx.report.progress(step, total, loss=losses[-1])
        mean = sum(losses) / len(losses)
        ctx.report.metric("epoch_loss", mean, step)
        ctx.report.log(f"epoch {epoch + 1}/{params['epochs']}: mean loss {mean:.4f}")

    model.to("cpu")
    save(model, base, ctx.output_dir)
    ctx.report.log(f"trained {step} steps in {time.perf_counter() - started:.1f}s")


def _precision_name(precision: contextlib.AbstractContextManager[Any]) -> str:
    return "bf16 autocast" if isinstance(precision, torch.autocast) else "float32"


def save(model: Any, base: Path, out: Path) -> None:
    """The fine-tuned weights (safetensors) and config, then the base's tokenizer, processor and
    generation config files copied byte for byte: what the model reads and writes is the base's."""
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    for path in sorted(base.iterdir()):
        if (
            path.is_file()
            and not path.name.startswith(".")
            and path.name not in NOT_COPIED
            and not path.name.endswith(NOT_COPIED_SUFFIXES)
        ):
            shutil.copyfile(path, out / path.name)


def load(model_dir: Path, device: str = "cpu", quantization: str = "none") -> Any:
    """The serving contract, through the Hugging Face runtime: the folder's own processor,
    tokenizer and generation config; `quantization` as for any deployment (a mode the hardware
    can't honour raises, never falls back)."""
    from appliance.runtimes.huggingface.runtime import load_predictor
    from appliance.serving.quantize import check_supported

    check_supported(device, quantization)  # before reading any weights
    model_dir = Path(model_dir)
    return load_predictor(model_dir, detect(model_dir, IMAGE_TO_TEXT), device, quantization)


def predict_all(predictor: Any, images: Sequence[Any], batch_size: int) -> list[str]:
    texts: list[str] = []
    for start in range(0, len(images), batch_size):
        texts.extend(text for text, *_ in predictor.predict(images[start : start + batch_size]))
    return texts


def evaluate(ctx: EvalContext) -> dict[str, float]:
    """Exact match and corpus BLEU of the served descriptions on the held-out rows."""
    params = {**defaults(), **ctx.params}
    predictor = load(ctx.model_dir, device=params["device"])
    images = [open_rgb(ctx.dataset_dir, row) for row in ctx.rows]
    predictions = predict_all(predictor, images, max(1, params["batch_size"]))
    metrics = text_scores(predictions, [str(row["text"]) for row in ctx.rows])
    shown = ", ".join(f"{k}={v:.3f}" for k, v in metrics.items())
    ctx.report.log(f"evaluated {len(ctx.rows)} rows: {shown}")
    if predictions:
        ctx.report.log(f"e.g. {predictions[0]!r} for {ctx.rows[0]['text']!r}")
    return metrics
