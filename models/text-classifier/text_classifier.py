"""The text-classifier recipe: `train(ctx)`, `evaluate(ctx)` and `load(model_dir)` for an ad's
title and text → its category, with a small BERT encoder and a WordPiece tokenizer built here."""

from __future__ import annotations

import math
import random
import time
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from appliance.recipes.context import EvalContext, TrainContext

# The appliance imports this folder as a package of its own (load_module), so the siblings are
# imported relatively: a copy of this recipe runs its own siblings, never these.
from .text_classifier_build import build_model, build_tokenizer, load_base
from .text_classifier_infer import TextClassifier

_HERE = Path(__file__).resolve().parent
REPORT_EVERY = 10  # steps between progress reports


def defaults() -> dict[str, Any]:
    """recipe.toml's param defaults, so a hand-made context may give only what it changes."""
    toml = tomllib.loads((_HERE / "recipe.toml").read_text("utf-8"))
    return {name: spec["default"] for name, spec in toml["params"].items()}


def ad_input(row: Mapping[str, Any], with_title: bool = True) -> str:
    """What the model reads for a dataset row: the title on the first line, then the text."""
    title = str(row.get("title") or "").strip()
    text = str(row.get("text") or "").strip()
    return f"{title}\n{text}" if title and with_title else text


def _schedule(step: int, warmup: int, total: int) -> float:
    """Linear warmup, then cosine decay to zero."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def _pad(seqs: Sequence[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, seqs))
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    for i, seq in enumerate(seqs):
        ids[i, : len(seq)] = torch.tensor(seq)
    return ids, (ids != pad).long()


def train(ctx: TrainContext) -> None:
    params = {**defaults(), **ctx.params}
    threads = torch.get_num_threads()
    if params["threads"] > 0:
        # Tiny matrices: a second thread gains nothing and, on a busy machine, waits for its
        # slowest member (1695 ads x 6 epochs: 8-10 s on two threads when the 2 cores were
        # idle, 25-57 s when others kept them busy; 8-14 s on one thread either way).
        torch.set_num_threads(params["threads"])
    try:
        _train(ctx, params)
    finally:
        torch.set_num_threads(threads)


def _train(ctx: TrainContext, params: dict[str, Any]) -> None:
    started = time.perf_counter()
    torch.manual_seed(ctx.seed)
    rng = random.Random(ctx.seed)  # shuffling and title dropping: one seeded stream
    rows = ctx.train_rows
    unlabelled = [i for i, row in enumerate(rows) if not row.get("label")]
    if unlabelled:
        raise ValueError(
            f"{len(unlabelled)} of {len(rows)} training rows have no 'label' "
            f"(the first is row {unlabelled[0]}); the text-classifier learns from labelled ads"
        )
    if not rows:
        raise ValueError("no training rows")
    labels = sorted({str(row["label"]) for row in rows})
    base = ctx.base_model or (Path(params["base_model"]) if params["base_model"] else None)
    texts = [ad_input(row) for row in rows]
    if base is None:
        tokenizer = build_tokenizer(texts, params["vocab_size"], params["max_length"])
        model = build_model(params, tokenizer, labels)
    else:
        model, tokenizer, labels = load_base(Path(base), texts, [str(row["label"]) for row in rows])
        ctx.report.log(f"fine-tuning {base}; labels: {', '.join(labels)}")
    label2id = {label: i for i, label in enumerate(labels)}
    device = torch.device(params["device"])
    model.to(device).train()
    n_params = sum(p.numel() for p in model.parameters())
    ctx.report.log(
        f"{n_params / 1e6:.2f}M parameters, {len(tokenizer)} tokens, {len(labels)} labels"
    )

    max_length = min(params["max_length"], model.config.max_position_embeddings)

    def encode(with_title: bool) -> list[list[int]]:
        batch = [ad_input(row, with_title) for row in rows]
        return tokenizer(batch, truncation=True, max_length=max_length).input_ids

    # Serving may get the text without its title: some training ads are shown that way too.
    full, untitled = encode(True), encode(False)
    targets = [label2id[str(row["label"])] for row in rows]
    batch_size = min(params["batch_size"], len(rows))
    total = params["epochs"] * math.ceil(len(rows) / batch_size)
    warmup = max(1, round(params["warmup"] * total))
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=params["lr"], weight_decay=params["weight_decay"]
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _schedule(s, warmup, total))

    step, smoothed = 0, 0.0
    for _ in range(params["epochs"]):
        order = list(range(len(rows)))
        rng.shuffle(order)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            seqs = [untitled[i] if rng.random() < params["title_drop"] else full[i] for i in idx]
            ids, mask = _pad(seqs, tokenizer.pad_token_id)
            target = torch.tensor([targets[i] for i in idx], device=device)
            loss = model(
                input_ids=ids.to(device), attention_mask=mask.to(device), labels=target
            ).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            step += 1
            smoothed = loss.item() if step == 1 else 0.9 * smoothed + 0.1 * loss.item()
            if step % REPORT_EVERY == 0 or step == total:
                ctx.report.progress(
                    step, total, loss=smoothed, lr=float(scheduler.get_last_lr()[0])
                )

    model.to("cpu")
    ctx.output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(ctx.output_dir, safe_serialization=True)
    tokenizer.save_pretrained(ctx.output_dir)
    ctx.report.log(f"trained {step} steps in {time.perf_counter() - started:.1f}s")


def load(model_dir: Path, device: str = "cpu", quantization: str = "none") -> TextClassifier:
    """The serving contract: a TextClassifier on `device`, its model quantized to
    `quantization` (none, bf16, int8, ...; a mode the hardware can't honour raises)."""
    from appliance.serving.quantize import check_supported, prepare_model

    check_supported(device, quantization)  # before reading any weights
    model = AutoModelForSequenceClassification.from_pretrained(Path(model_dir))
    tokenizer = AutoTokenizer.from_pretrained(Path(model_dir))
    return TextClassifier(prepare_model(model, device, quantization), tokenizer, device)


def score(predicted: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Accuracy, macro F1 (over the labels of the rows and of the predictions) and per-label
    accuracy (`acc_<label>`: the share of that label's rows predicted right)."""
    truth = [str(row["label"]) for row in rows]
    hits = [p == t for p, t in zip(predicted, truth, strict=True)]
    metrics = {"accuracy": sum(hits) / max(1, len(hits))}
    f1s = []
    for label in sorted({*truth, *predicted}):
        tp = sum(h and t == label for h, t in zip(hits, truth, strict=True))
        support, claimed = truth.count(label), list(predicted).count(label)
        f1s.append(2 * tp / (support + claimed) if support + claimed else 0.0)
        if support:
            metrics[f"acc_{label}"] = tp / support
    metrics["macro_f1"] = sum(f1s) / max(1, len(f1s))
    return {k: float(v) for k, v in metrics.items()}


def evaluate(ctx: EvalContext) -> dict[str, float]:
    classifier = load(ctx.model_dir, device=ctx.params.get("device", "cpu"))
    predicted = [label for label, *_ in classifier.predict([ad_input(r) for r in ctx.rows])]
    metrics = score(predicted, ctx.rows)
    shown = ", ".join(f"{k}={v:.3f}" for k, v in metrics.items())
    ctx.report.log(f"evaluated {len(ctx.rows)} rows: {shown}")
    return metrics
