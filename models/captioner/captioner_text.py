"""The captioner's words: a word-level tokenizer built from the training captions, keyword
prompts, and reading attributes back out of a generated description."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from tokenizers import AddedToken, Tokenizer, models, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerFast

PAD, BOS, EOS, UNK, KW, SEP = "<pad>", "<bos>", "<eos>", "<unk>", "<kw>", "<sep>"
SPECIALS = (PAD, BOS, EOS, UNK, KW, SEP)
MAX_KEYWORDS = 8  # a prompt longer than this says nothing more about one photo
IGNORE = -100  # cross_entropy's ignore_index: prompt and padding positions


def caption_words(rows: Iterable[dict[str, Any]]) -> list[str]:
    """Every word of every caption, sorted: the vocabulary comes from the data, never a list."""
    return sorted({w for row in rows for w in str(row["text"]).lower().split()})


def build_tokenizer(rows: Iterable[dict[str, Any]]) -> PreTrainedTokenizerFast:
    """A WordLevel tokenizer over the captions' words plus the special tokens."""
    vocab = {token: i for i, token in enumerate([*SPECIALS, *caption_words(rows)])}
    core = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    core.normalizer = normalizers.Lowercase()  # users type "Red", captions say "red"
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        additional_special_tokens=[KW, SEP],
    )


def extend_tokenizer(tokenizer: PreTrainedTokenizerFast, rows: Iterable[dict[str, Any]]) -> int:
    """Add caption words a base model's tokenizer lacks (a new category); returns how many."""
    missing = [w for w in caption_words(rows) if w not in tokenizer.get_vocab()]
    # single_word: "car" must not match inside some longer word.
    return tokenizer.add_tokens([AddedToken(w, single_word=True) for w in missing])


class Encoder:
    """Turns captions and keywords into token id sequences: [bos] (<kw> words <sep>) caption [eos].

    The keyword part is a prompt: it conditions the caption and is never scored by the loss.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerFast, texts: Sequence[str] = ()) -> None:
        self.tokenizer = tokenizer
        # Words in most captions ("on", "a", "background") say nothing about a photo: keyword
        # prompts are drawn from the rest, as a user's would be ("red car").
        counts = Counter(w for text in texts for w in set(text.split()))
        self.common = {w for w, n in counts.items() if n > len(texts) / 2}
        ids = tokenizer.convert_tokens_to_ids
        self.pad, self.bos, self.eos = ids(PAD), ids(BOS), ids(EOS)
        self.kw, self.sep = ids(KW), ids(SEP)

    def words(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False).input_ids

    def prompt(self, keywords: str | None) -> list[int]:
        words = self.words(keywords or "")[:MAX_KEYWORDS]
        return [self.bos, self.kw, *words, self.sep] if words else [self.bos]

    def training_batch(
        self, texts: Sequence[str], keyword_rate: float, rng: random.Random
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoder inputs and labels (already shifted: labels[t] is the token after inputs[t])."""
        seqs, starts = [], []
        for text in texts:
            prompt = [self.bos]
            words = [w for w in text.split() if w not in self.common]
            if words and rng.random() < keyword_rate:
                picked = rng.sample(words, rng.randint(1, min(3, len(words))))
                prompt = self.prompt(" ".join(picked))
            seqs.append([*prompt, *self.words(text), self.eos])
            starts.append(len(prompt))
        width = max(map(len, seqs))
        full = torch.full((len(seqs), width), self.pad, dtype=torch.long)
        labels = torch.full((len(seqs), width), IGNORE, dtype=torch.long)
        for i, (seq, start) in enumerate(zip(seqs, starts, strict=True)):
            full[i, : len(seq)] = torch.tensor(seq)
            # Only caption tokens and eos are targets: the prompt is given, padding is nothing.
            labels[i, start - 1 : len(seq) - 1] = torch.tensor(seq[start:])
        return full[:, :-1], labels[:, :-1]

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True).strip()


def attribute_hits(
    predicted: str, row: dict[str, Any], attributes: Sequence[str]
) -> dict[str, bool]:
    """Per attribute, whether the prediction has the row's value in the value's slot.

    Captions have a fixed word order, so the slot is where the value sits in the reference text.
    """
    ref, pred = str(row["text"]).split(), predicted.split()
    hits = {}
    for name in attributes:
        value = str(row.get(name, "")).split()
        if not value:
            continue
        at = next((i for i in range(len(ref)) if ref[i : i + len(value)] == value), None)
        hits[name] = at is not None and pred[at : at + len(value)] == value
    return hits
