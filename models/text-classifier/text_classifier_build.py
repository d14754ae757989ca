"""Builds the text classifier from a config (a small BERT with a classification head) and its
WordPiece tokenizer from the training texts, or loads a saved one to fine-tune onto more labels."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
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

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_NORMALIZER = normalizers.BertNormalizer(lowercase=True)
_SPLITTER = pre_tokenizers.BertPreTokenizer()


def word_counts(texts: Sequence[str]) -> Counter[str]:
    """The texts' words as the tokenizer sees them: lower-cased, split at spaces and punctuation."""
    return Counter(
        word
        for text in texts
        for word, _ in _SPLITTER.pre_tokenize_str(_NORMALIZER.normalize_str(text))
    )


def _frequent(counts: Counter[str], known: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """Words seen at least twice and not `known`, most frequent first (ties by spelling)."""
    words = (w for w, n in counts.items() if n >= 2 and len(w) > 1 and w not in known)
    return sorted(words, key=lambda w: (-counts[w], w))


def _characters(counts: Counter[str], known: set[str] | frozenset[str] = frozenset()) -> list[str]:
    chars = sorted({c for word in counts for c in word})
    return [p for c in chars for p in (c, f"##{c}") if p not in known]


def _tokenizer(pieces: Sequence[str], max_length: int) -> PreTrainedTokenizerFast:
    core = Tokenizer(models.WordPiece({p: i for i, p in enumerate(pieces)}, unk_token="[UNK]"))
    core.normalizer = _NORMALIZER
    core.pre_tokenizer = _SPLITTER
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
    counts = word_counts(texts)
    pieces = [*SPECIALS, *_characters(counts)]
    return _tokenizer(pieces + _frequent(counts)[: max(0, vocab_size - len(pieces))], max_length)


def extend_tokenizer(tokenizer: Any, texts: Sequence[str]) -> tuple[PreTrainedTokenizerFast, int]:
    """`tokenizer` plus the characters and frequent words of `texts` it lacks (a new category's
    "hatchback", "gearbox"), appended so every known token keeps its id; returns how many."""
    vocab = tokenizer.get_vocab()
    old = sorted(vocab, key=vocab.__getitem__)
    if [vocab[p] for p in old] != list(range(len(old))):
        raise ValueError("the base model's vocabulary has gaps; is it a text-classifier folder?")
    counts, known = word_counts(texts), set(old)
    added = _characters(counts, known) + _frequent(counts, known)
    return _tokenizer(old + added, tokenizer.model_max_length), len(added)


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


def load_base(
    folder: Path, texts: Sequence[str], labels: Sequence[str]
) -> tuple[Any, Any, list[str]]:
    """A saved classifier to fine-tune on `texts` and their `labels`: its vocabulary grows by the
    words the texts bring, and a label it lacks (a new category) gets a row of its own in the
    head; the labels it knows keep theirs."""
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    tokenizer, added = extend_tokenizer(AutoTokenizer.from_pretrained(folder), texts)
    if added:
        model.resize_token_embeddings(len(tokenizer))
    old = [model.config.id2label[i] for i in range(model.config.num_labels)]
    merged = sorted({*old, *labels})
    if merged != old:
        head = model.classifier
        new = torch.nn.Linear(head.in_features, len(merged))
        rows = _imprint(model, tokenizer, texts, labels, head.weight.norm(dim=1).mean())
        with torch.no_grad():
            for i, label in enumerate(merged):
                if label in old:
                    new.weight[i] = head.weight[old.index(label)]
                    new.bias[i] = head.bias[old.index(label)]
                else:
                    new.weight[i] = rows[label]
                    new.bias[i] = head.bias.mean()
        model.classifier = new
        model.num_labels = model.config.num_labels = len(merged)
        model.config.id2label = dict(enumerate(merged))
        model.config.label2id = {label: i for i, label in enumerate(merged)}
    return model, tokenizer, merged


@torch.no_grad()
def _imprint(
    model: Any, tokenizer: Any, texts: Sequence[str], labels: Sequence[str], norm: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Per label, a head row pointing from the mean pooled feature of all texts to that of the
    label's texts ("weight imprinting"): a new category starts out recognised instead of at a
    random row, which a short fine-tuning often never recovered from (0 of 33 cars right)."""
    model.eval()
    pooled = []
    for start in range(0, len(texts), 64):
        batch = tokenizer(
            list(texts[start : start + 64]), padding=True, truncation=True, return_tensors="pt"
        )
        batch["token_type_ids"] = torch.zeros_like(batch["input_ids"])
        pooled.append(model.base_model(**batch).pooler_output)
    features = torch.cat(pooled)
    centre = features.mean(0)
    rows = {}
    for label in sorted(set(labels)):
        mask = torch.tensor([x == label for x in labels])
        direction = features[mask].mean(0) - centre
        rows[label] = direction / direction.norm().clamp_min(1e-6) * norm
    return rows
