"""The text-classifier recipe: `train(ctx)`, `evaluate(ctx)` and `load(model_dir)` for an ad's
title and text → its category, with a small BERT encoder and a WordPiece tokenizer trained here.

One module on purpose: it works with any recipe loader (by file, or the folder as a package)."""

from __future__ import annotations

import math
import random
import time
import tomllib
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    PreTrainedTokenizerFast,
)

from appliance.recipes.context import EvalContext, TrainContext

_HERE = Path(__file__).resolve().parent
SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
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


def build_tokenizer(
    texts: Sequence[str], vocab_size: int, max_length: int
) -> PreTrainedTokenizerFast:
    """A lower-casing WordPiece tokenizer over `texts`, BERT-style ([CLS] text [SEP]): every
    character seen (alone and as a `##` continuation), then the most frequent words.

    The vocabulary is counted here rather than by `tokenizers`' WordPieceTrainer: that one breaks
    ties in hash-map order, so two processes given the same texts learn different vocabularies
    (and the same seed would no longer give the same weights). A word outside the vocabulary (a
    typo, a new brand) falls back to its characters.
    """
    normalizer = normalizers.BertNormalizer(lowercase=True)
    splitter = pre_tokenizers.BertPreTokenizer()
    counts = Counter(
        word
        for text in texts
        for word, _ in splitter.pre_tokenize_str(normalizer.normalize_str(text))
    )
    chars = sorted({c for word in counts for c in word})
    pieces = [*SPECIALS, *chars, *(f"##{c}" for c in chars)]
    words = sorted(
        (w for w, n in counts.items() if n >= 2 and len(w) > 1), key=lambda w: (-counts[w], w)
    )
    pieces += words[: max(0, vocab_size - len(pieces))]
    core = Tokenizer(models.WordPiece({p: i for i, p in enumerate(pieces)}, unk_token="[UNK]"))
    core.normalizer = normalizer
    core.pre_tokenizer = splitter
    core.decoder = decoders.WordPiece()
    cls, sep = core.token_to_id("[CLS]"), core.token_to_id("[SEP]")
    core.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=max_length,
    )


def build_model(params: dict[str, Any], tokenizer: Any, labels: Sequence[str]) -> Any:
    width = params["hidden_size"]
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=width,
        num_hidden_layers=params["layers"],
        num_attention_heads=params["heads"],
        intermediate_size=params["mlp_ratio"] * width,
        max_position_embeddings=params["max_length"],
        hidden_dropout_prob=params["dropout"],
        attention_probs_dropout_prob=params["dropout"],
        pad_token_id=tokenizer.pad_token_id,
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    return AutoModelForSequenceClassification.from_config(config)


def load_base(folder: Path, labels: Sequence[str]) -> tuple[Any, Any, list[str]]:
    """A saved classifier to fine-tune; a label it lacks (a new category) gets a fresh row in
    the head, the labels it knows keep theirs."""
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    old = [model.config.id2label[i] for i in range(model.config.num_labels)]
    merged = sorted({*old, *labels})
    if merged != old:
        head = model.classifier
        new = torch.nn.Linear(head.in_features, len(merged))
        with torch.no_grad():
            for i, label in enumerate(merged):
                if label in old:
                    new.weight[i] = head.weight[old.index(label)]
                    new.bias[i] = head.bias[old.index(label)]
        model.classifier = new
        model.num_labels = model.config.num_labels = len(merged)
        model.config.id2label = dict(enumerate(merged))
        model.config.label2id = {label: i for i, label in enumerate(merged)}
    return model, tokenizer, merged


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
        # slowest member (1695 ads x 6 epochs: 10 s on two threads when the 2 cores were
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
    if base is None:
        texts = [ad_input(row) for row in rows]
        tokenizer = build_tokenizer(texts, params["vocab_size"], params["max_length"])
        model = build_model(params, tokenizer, labels)
    else:
        model, tokenizer, labels = load_base(Path(base), labels)
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


class TextClassifier:
    """A loaded classifier: `predict` texts to (label, probability per label)."""

    def __init__(self, model: Any, tokenizer: Any, device: str, batch_size: int = 64):
        self.model = model
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        self.batch_size = batch_size
        config = model.config
        self.labels = [config.id2label[i] for i in range(config.num_labels)]
        self.max_length = min(tokenizer.model_max_length, config.max_position_embeddings)

    @torch.inference_mode()
    def predict(self, texts: Sequence[str]) -> list[tuple[str, dict[str, float]]]:
        results: list[tuple[str, dict[str, float]]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(
                [str(t) for t in texts[start : start + self.batch_size]],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(self.device)
            # Given, not left to BERT's buffer: torch's int8 embedding refuses that buffer's
            # non-contiguous expanded view.
            types = torch.zeros_like(batch["input_ids"])
            logits = self.model(**batch, token_type_ids=types).logits
            probs = logits.float().softmax(-1).cpu().tolist()
            for row in probs:
                best = max(range(len(row)), key=row.__getitem__)
                results.append((self.labels[best], dict(zip(self.labels, row, strict=True))))
        return results


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
    predicted = [label for label, _ in classifier.predict([ad_input(r) for r in ctx.rows])]
    metrics = score(predicted, ctx.rows)
    shown = ", ".join(f"{k}={v:.3f}" for k, v in metrics.items())
    ctx.report.log(f"evaluated {len(ctx.rows)} rows: {shown}")
    return metrics
