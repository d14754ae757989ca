"""The captioner recipe: `train(ctx)`, `evaluate(ctx)` and `load(model_dir)` for product photo →
description with a small conv+ViT encoder and GPT-2 decoder, trained from scratch on CPU."""

from __future__ import annotations

import math
import random
import time
import tomllib
from pathlib import Path
from typing import Any

import sacrebleu
import torch
import torch.nn.functional as F

from appliance.recipes.context import EvalContext, TrainContext
from appliance.tasks.keywords import adherence

# The appliance imports this folder as a package of its own (load_module), so the siblings are
# imported relatively: a copy of this recipe runs its own siblings, never these.
from .captioner_build import build, load_base
from .captioner_data import TrainImages, open_rgb
from .captioner_infer import Captioner
from .captioner_text import IGNORE, Encoder, attribute_hits

_HERE = Path(__file__).resolve().parent

ATTRIBUTES = ("category", "color", "pattern", "background")
REPORT_EVERY = 5  # steps between progress reports


def defaults() -> dict[str, Any]:
    """recipe.toml's param defaults, so a hand-made context may give only what it changes."""
    toml = tomllib.loads((_HERE / "recipe.toml").read_text("utf-8"))
    return {name: spec["default"] for name, spec in toml["params"].items()}


def _schedule(step: int, warmup: int, total: int) -> float:
    """Linear warmup, then cosine decay to zero: a high peak lr that still ends settled."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def _model(ctx: TrainContext, params: dict[str, Any]):
    base = ctx.base_model or (Path(params["base_model"]) if params["base_model"] else None)
    if base is None:
        return build(ctx.train_rows, params)
    model, tokenizer, processor, added = load_base(Path(base), ctx.train_rows)
    ctx.report.log(f"fine-tuning {base}")
    if added:
        shown = ", ".join(added[:20]) + (", ..." if len(added) > 20 else "")
        ctx.report.log(
            f"warning: added {len(added)} tokens to the base tokenizer, for caption words it "
            f"cannot encode: {shown}; the decoder's embeddings grow to match"
        )
    return model, tokenizer, processor


def train(ctx: TrainContext) -> None:
    params = {**defaults(), **ctx.params}
    started = time.perf_counter()
    torch.manual_seed(ctx.seed)
    rng = random.Random(ctx.seed)  # shuffling, keywords and augmentation: one seeded stream
    rows = ctx.train_rows
    model, tokenizer, processor = _model(ctx, params)
    device = torch.device(params["device"])
    # Channels-last: the conv stem's kernels run ~30% faster on CPU in that layout.
    model.to(device, memory_format=torch.channels_last).train()
    n_params = sum(p.numel() for p in model.parameters())
    ctx.report.log(f"{n_params / 1e6:.2f}M parameters, vocabulary of {len(tokenizer)} tokens")

    images = TrainImages(ctx.dataset_dir, rows, processor)
    texts = [str(row["text"]) for row in rows]
    keywords = [row.get("keywords") or None for row in rows]
    if any(keywords):
        ctx.report.log(f"{sum(map(bool, keywords))} rows carry seller keywords: prompted with them")
    text = Encoder(tokenizer, texts, model)
    if not text.takes_keywords:
        ctx.report.log("the tokenizer has no <kw>/<sep> tokens: trained without keyword prompts")
    batch_size = min(params["batch_size"], len(rows))
    total = params["epochs"] * math.ceil(len(rows) / batch_size)
    warmup = max(1, round(params["warmup"] * total))
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=params["lr"], betas=(0.9, 0.98), weight_decay=params["weight_decay"]
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _schedule(s, warmup, total))
    ctx.report.log(f"{len(rows)} photos loaded in {time.perf_counter() - started:.1f}s")

    step, smoothed = 0, 0.0
    for _ in range(params["epochs"]):
        order = list(range(len(rows)))
        rng.shuffle(order)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            pix = images.batch(idx, rng, params["low_light_fraction"], mirror=params["mirror"])
            inputs, mask, labels = text.masked_batch(
                [texts[i] for i in idx], params["keyword_rate"], rng, [keywords[i] for i in idx]
            )
            pix = pix.to(device, memory_format=torch.channels_last)
            inputs, mask, labels = inputs.to(device), mask.to(device), labels.to(device)
            # Our own shift (in training_batch) and loss: the model's built-in loss would shift
            # the labels a second time.
            logits = model(
                pixel_values=pix,
                decoder_input_ids=inputs,
                decoder_attention_mask=mask,
            ).logits
            loss = F.cross_entropy(
                logits.flatten(0, 1),
                labels.flatten(),
                ignore_index=IGNORE,
                label_smoothing=params["label_smoothing"],
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            step += 1
            smoothed = loss.item() if step == 1 else 0.9 * smoothed + 0.1 * loss.item()
            if step % REPORT_EVERY == 0 or step == total:
                ctx.report.progress(step, total, loss=smoothed, lr=scheduler.get_last_lr()[0])

    model.to("cpu", memory_format=torch.contiguous_format)
    ctx.output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(ctx.output_dir, safe_serialization=True)
    tokenizer.save_pretrained(ctx.output_dir)
    processor.save_pretrained(ctx.output_dir)
    ctx.report.log(f"trained {step} steps in {time.perf_counter() - started:.1f}s")


def load(model_dir: Path, device: str = "cpu", quantization: str = "none") -> Captioner:
    """The serving contract: a Captioner on `device`, its model quantized to `quantization`
    (none, fp16, bf16, int8, nf4; a mode the hardware can't honour raises, never falls back)."""
    from appliance.serving.quantize import check_supported, prepare_model

    check_supported(device, quantization)  # before reading any weights
    captioner = Captioner(Path(model_dir), device="cpu")
    captioner.model = prepare_model(captioner.model, device, quantization)
    captioner.device = torch.device(device)
    return captioner


def score(predictions: list[str], rows: list[dict[str, Any]]) -> dict[str, float]:
    """Exact match (overall and per lighting), corpus BLEU and per-attribute accuracy."""
    refs = [str(row["text"]) for row in rows]
    exact = [p == r for p, r in zip(predictions, refs, strict=True)]
    metrics = {
        "exact_match": sum(exact) / max(1, len(exact)),
        "bleu": float(sacrebleu.corpus_bleu(predictions, [refs]).score) if rows else 0.0,
    }
    for lighting in ("normal", "low"):
        split = [e for e, row in zip(exact, rows, strict=True) if row.get("lighting") == lighting]
        if split:  # an empty split has no accuracy: left out rather than reported as NaN
            metrics[f"exact_match_{lighting}"] = sum(split) / len(split)
    hits: dict[str, list[bool]] = {name: [] for name in ATTRIBUTES}
    for pred, row in zip(predictions, rows, strict=True):
        for name, hit in attribute_hits(pred, row, ATTRIBUTES).items():
            hits[name].append(hit)
    metrics |= {f"acc_{name}": sum(h) / len(h) for name, h in hits.items() if h}
    # Where rows carry seller keywords: the share honoured, in place (left out otherwise).
    given = [row.get("keywords") or None for row in rows]
    if (kept := adherence(predictions, given, refs).share) is not None:
        metrics["keyword_adherence"] = kept
        with_kw = [e for e, k in zip(exact, given, strict=True) if k]
        metrics["exact_match_keywords"] = sum(with_kw) / len(with_kw)
    return {k: float(v) for k, v in metrics.items()}


def evaluate(ctx: EvalContext) -> dict[str, float]:
    captioner = load(ctx.model_dir, device=ctx.params.get("device", "cpu"))
    images = [open_rgb(ctx.dataset_dir, row) for row in ctx.rows]
    keywords = [row.get("keywords") or None for row in ctx.rows]
    predictions = [text for text, *_ in captioner.predict(images, keywords)]
    metrics = score(predictions, ctx.rows)
    shown = ", ".join(f"{k}={v:.3f}" for k, v in metrics.items())
    ctx.report.log(f"evaluated {len(ctx.rows)} rows: {shown}")
    return metrics
