"""Tokenizers for the test folders of `hf_folders.py`, trained here on a small corpus of product
descriptions (nothing is downloaded), in each model family's own style and special tokens; and
the muting of output rows for tokens that decode to nothing visible, so that a model with random
weights writes text rather than stopping at once."""

from __future__ import annotations

import functools
import itertools
import json
import math
import string
from collections import Counter
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from tokenizers import trainers as tokenizer_trainers
from transformers import (
    AddedToken,
    BertTokenizer,
    GPT2Tokenizer,
    PreTrainedTokenizerFast,
    RobertaTokenizer,
    T5Tokenizer,
)

POSITIONS = 64
"""The tiny models' positions: the tokenizers' default model_max_length."""
_POSITIONS = POSITIONS


# --- the corpus ------------------------------------------------------------------------------

_COLOURS = (
    "red", "blue", "green", "black", "white", "brown",
    "grey", "yellow", "pink", "navy", "beige", "orange",
)  # fmt: skip
_MATERIALS = (
    "leather", "canvas", "wooden", "metal", "plastic",
    "cotton", "wool", "suede", "glass", "ceramic",
)  # fmt: skip
_PRODUCTS = (
    "shoe", "sneaker", "boot", "sandal", "slipper",  # shoes
    "bag", "backpack", "handbag", "wallet", "suitcase",  # bags
    "chair", "table", "sofa", "lamp", "shelf",  # furniture
    "phone", "laptop", "camera", "headphones", "speaker",  # electronics
)  # fmt: skip
_SCENES = (
    "on a white background", "on a wooden floor", "in a bright room", "on a grey table",
    "next to a window", "in low light", "outdoors on the grass", "held in a hand",
)  # fmt: skip
_TEMPLATES = (
    "a {colour} {material} {product} {scene}",
    "{colour} {product} for sale, {material}, like new",
    "used {material} {product} in {colour}, good condition",
    "Photo of a {colour} {product} {scene}.",
)


def corpus() -> list[str]:
    """Short product descriptions ("a red leather shoe on a white background" and variations),
    after a line of every printable ASCII character, so that any ASCII text has pieces."""
    lines = [" ".join(string.ascii_letters + string.digits + string.punctuation)]
    for i, (colour, product) in enumerate(itertools.product(_COLOURS, _PRODUCTS)):
        material, scene = _MATERIALS[i % len(_MATERIALS)], _SCENES[i % len(_SCENES)]
        for template in _TEMPLATES:
            lines.append(
                template.format(colour=colour, material=material, product=product, scene=scene)
            )
    return lines


# --- tokenizers ------------------------------------------------------------------------------

_Merges = tuple[tuple[str, str], ...]
_Vocab = tuple[tuple[str, int], ...]


def _merges_of(raw: Tokenizer) -> _Merges:
    merges = json.loads(raw.to_str())["model"]["merges"]
    pairs = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in merges]
    return tuple((a, b) for a, b in pairs)


# Only the BPE trainer of `tokenizers` is deterministic from run to run: its WordPiece trainer
# numbers the "##" pieces in hash-map order, which then breaks ties between merges
# (huggingface/tokenizers#1794), and its Unigram trainer's scores differ in the last digits. So
# the WordPiece and Unigram vocabularies are derived here from a BPE trained on the same words.


def _pre_tokenized(style: str) -> Tokenizer:
    """An empty BPE tokenizer with the normalizer and pre-tokenizer of a family's style."""
    raw = Tokenizer(models.BPE())
    if style == "byte-level":  # GPT-2, RoBERTa, Llama 3, SmolLM
        raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    elif style == "bert":  # BERT uncased: lowercase, split on spaces and punctuation
        raw.normalizer = normalizers.BertNormalizer(lowercase=True)
        raw.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    elif style == "metaspace":  # T5's sentencepiece: "▁" starts each word
        raw.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.WhitespaceSplit(),
                pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True),
            ]
        )
    else:
        raise ValueError(style)
    return raw


@functools.cache
def _trained_bpe(style: str, specials: tuple[str, ...], vocab_size: int) -> tuple[_Vocab, _Merges]:
    raw = _pre_tokenized(style)
    alphabet = pre_tokenizers.ByteLevel.alphabet() if style == "byte-level" else []
    trainer = tokenizer_trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(specials),
        initial_alphabet=alphabet,
        show_progress=False,
    )
    raw.train_from_iterator(corpus(), trainer)
    vocab = sorted(raw.get_vocab().items(), key=lambda item: item[1])
    return tuple(vocab), _merges_of(raw)


def _byte_level_bpe(specials: tuple[str, ...], vocab_size: int) -> tuple[dict[str, int], list[Any]]:
    """A fresh copy of the trained vocabulary and merges (pairs, as `tokenizers` takes them;
    transformers' annotation says strings)."""
    vocab, merges = _trained_bpe("byte-level", specials, vocab_size)
    return dict(vocab), list(merges)


def _wordpiece(specials: tuple[str, ...], vocab_size: int) -> dict[str, int]:
    """A WordPiece vocabulary: the specials, then each BPE piece both as a word's start and,
    "##"-prefixed, as its continuation (WordPiece takes the longest piece that matches)."""
    vocab, _ = _trained_bpe("bert", (), (vocab_size - len(specials)) // 2)
    pieces = [piece for piece, _ in vocab]
    tokens = [*specials, *pieces, *(f"##{piece}" for piece in pieces)]
    return {token: i for i, token in enumerate(tokens)}


@functools.cache
def _unigram(specials: tuple[str, ...], vocab_size: int) -> tuple[tuple[str, float], ...]:
    """A Unigram vocabulary: the specials (score 0), then the BPE pieces scored with the log of
    their (smoothed) frequency in the BPE segmentation of the corpus."""
    vocab, merges = _trained_bpe("metaspace", (), vocab_size - len(specials))
    raw = _pre_tokenized("metaspace")
    raw.model = models.BPE(vocab=dict(vocab), merges=list[Any](merges))
    counts = Counter(t for line in corpus() for t in raw.encode(line).tokens)
    total = sum(counts.values()) + len(vocab)
    scored = [(piece, math.log((counts[piece] + 1) / total)) for piece, _ in vocab]
    return (*((special, 0.0) for special in specials), *scored)


def token_id(tokenizer: Any, token: str) -> int:
    found = tokenizer.convert_tokens_to_ids(token)
    if not isinstance(found, int) or found == tokenizer.unk_token_id:
        raise RuntimeError(f"{token!r} is not in the tokenizer")
    return found


def _special(*tokens: str) -> list[AddedToken]:
    return [AddedToken(t, special=True, normalized=False) for t in tokens]


def gpt2_tokenizer(max_length: int = _POSITIONS) -> GPT2Tokenizer:
    """GPT-2's byte-level BPE with <|endoftext|> as bos, eos and unk (and no pad, as GPT-2)."""
    vocab, merges = _byte_level_bpe(("<|endoftext|>",), 1000)
    return GPT2Tokenizer(vocab=vocab, merges=merges, model_max_length=max_length)


def roberta_tokenizer() -> RobertaTokenizer:
    """RoBERTa's byte-level BPE: <s>=0, <pad>=1, </s>=2, <unk>=3, <mask>=4."""
    vocab, merges = _byte_level_bpe(("<s>", "<pad>", "</s>", "<unk>", "<mask>"), 1000)
    return RobertaTokenizer(vocab=vocab, merges=merges, model_max_length=_POSITIONS)


_BERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def bert_tokenizer(
    cls: type[BertTokenizer] = BertTokenizer, max_length: int = _POSITIONS
) -> BertTokenizer:
    """An uncased WordPiece: [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4."""
    return cls(vocab=_wordpiece(_BERT_SPECIALS, 800), model_max_length=max_length)


def blip_tokenizer(max_length: int = _POSITIONS) -> BertTokenizer:
    """BLIP's: BERT's WordPiece with [DEC] as bos (the decoder's first token) and [ENC] added."""
    tokenizer = bert_tokenizer(max_length=max_length)
    tokenizer.add_special_tokens(
        {"bos_token": _special("[DEC]")[0], "extra_special_tokens": _special("[ENC]")}
    )
    return tokenizer


def llama_tokenizer() -> PreTrainedTokenizerFast:
    """A Llama-3 style byte-level BPE: <unk>=0, <s>=1 (added in front), </s>=2, then <image>
    and <pad> added, as llava-hf's tokenizers have them."""
    vocab, merges = _byte_level_bpe(("<unk>", "<s>", "</s>"), 1000)
    raw = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    raw.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", vocab["<s>"])]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        model_max_length=256,
    )
    tokenizer.add_special_tokens(
        {"pad_token": _special("<pad>")[0], "extra_special_tokens": _special("<image>")}
    )
    return tokenizer


def smolvlm_tokenizer(max_length: int = 256) -> GPT2Tokenizer:
    """SmolVLM's: a GPT-2 class byte-level BPE, bos <|im_start|>, eos <end_of_utterance>,
    pad <|im_end|>, with the image tokens Idefics3Processor looks up."""
    vocab, merges = _byte_level_bpe(("<|endoftext|>", "<|im_start|>", "<|im_end|>"), 1000)
    tokenizer = GPT2Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token="<|endoftext|>",
        bos_token="<|im_start|>",
        pad_token="<|im_end|>",
        model_max_length=max_length,
    )
    tiles = [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]
    image_tokens = ["<fake_token_around_image>", "<image>", "<global-img>", *tiles]
    eos = _special("<end_of_utterance>")[0]
    tokenizer.add_special_tokens(
        {"eos_token": eos, "extra_special_tokens": _special(*image_tokens)}
    )
    return tokenizer


def t5_tokenizer() -> T5Tokenizer:
    """T5's Unigram (as Pix2Struct's): <pad>=0, </s>=1, <unk>=2, no extra ids."""
    pieces = list(_unigram(("<pad>", "</s>", "<unk>"), 600))
    return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=_POSITIONS)


# --- making random weights write text ---------------------------------------------------------


def _visible(text: str) -> bool:
    return bool(text.strip()) and text.isprintable() and "\ufffd" not in text


def invisible_ids(tokenizer: Any, vocab_size: int) -> list[int]:
    """Ids below vocab_size that decode to nothing visible: special tokens, blanks, partial bytes,
    control characters, and the padding rows beyond the tokenizer."""
    special = set(tokenizer.all_special_ids)
    size = len(tokenizer)
    return [
        i
        for i in range(vocab_size)
        if i >= size or i in special or not _visible(tokenizer.decode([i]))
    ]


def _mute(head: Any, ids: list[int]) -> None:
    with torch.no_grad():
        head.weight[ids] = 0.0
        if getattr(head, "bias", None) is not None:
            head.bias[ids] = 0.0


def mute_invisible(model: Any, tokenizer: Any, vocab_size: int) -> None:
    head = model.get_output_embeddings()
    if head is None or head.weight.shape[0] != vocab_size:
        raise RuntimeError(f"{type(model).__name__}: no output embeddings of {vocab_size} rows")
    _mute(head, invisible_ids(tokenizer, vocab_size))
