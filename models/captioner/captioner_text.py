"""The captioner's words: a word-level tokenizer built from the training captions, keyword
prompts, and reading attributes back out of a generated description."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from tokenizers import AddedToken, Tokenizer, models, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from appliance.tasks.keywords import parse_keywords, prompt_words

PAD, BOS, EOS, UNK, KW, SEP = "<pad>", "<bos>", "<eos>", "<unk>", "<kw>", "<sep>"
SPECIALS = (PAD, BOS, EOS, UNK, KW, SEP)
MAX_KEYWORDS = 8  # a prompt longer than this says nothing more about one photo
KEYWORD_DROP = 0.2
"""Share of the times a row with seller keywords is shown without them, its caption without
them too: what teaches the model that a brand nobody gave is a brand it must not write."""
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


def unencodable_words(tokenizer: Any, words: Iterable[str]) -> list[str]:
    """The `words` the tokenizer cannot write: those it encodes with its unknown token. A
    byte-level BPE (GPT-2, RoBERTa) encodes every word, so it has none; the captioner's own
    word-level tokenizer lacks every word it was not built with (a new category)."""
    unk = tokenizer.unk_token_id
    if unk is None:  # no unknown token: every text has an encoding
        return []
    return [w for w in words if unk in tokenizer(w, add_special_tokens=False).input_ids]


def extend_tokenizer(tokenizer: Any, rows: Iterable[dict[str, Any]]) -> list[str]:
    """Add the caption words a base model's tokenizer cannot encode (a new category for the
    captioner's word-level vocabulary); returns them. A word the tokenizer can already write,
    in whatever pieces, is never added: a whole-word token would change how the base
    tokenizes it ("Ġbackground" becoming "Ġ" + "background")."""
    missing = unencodable_words(tokenizer, caption_words(rows))
    # single_word: "car" must not match inside some longer word.
    tokenizer.add_tokens([AddedToken(w, single_word=True) for w in missing])
    return missing


@dataclass(frozen=True)
class SpecialIds:
    """The ids a caption is framed with, as the folder's own config and tokenizer name them."""

    start: int
    """The decoder's first token (decoder_start_token_id: bos for the captioner, </s> for
    TrOCR-style folders)."""
    eos: int
    pad: int
    kw: int | None
    """<kw> and <sep> frame a keyword prompt; None where the tokenizer has no such tokens
    (keywords are then not given to the model)."""
    sep: int | None


def _first_id(*candidates: Any) -> int | None:
    for found in candidates:
        if isinstance(found, list | tuple):
            found = found[0] if found else None
        if found is not None:
            return int(found)
    return None


def special_ids(tokenizer: Any, model: Any = None) -> SpecialIds:
    """Start, end and pad ids from `model`'s config and generation config where it has them,
    else from the tokenizer's own special tokens (bos/eos/pad, or BERT's cls/sep): never
    looked up by a name the tokenizer may not have, which would give its <unk>."""
    configs = []
    if model is not None:
        configs = [model.config, getattr(model, "generation_config", None)]
        configs.append(getattr(model.config, "decoder", None))
    configs = [c for c in configs if c is not None]

    def from_configs(name: str) -> list[Any]:
        return [getattr(c, name, None) for c in configs]

    start = _first_id(
        *from_configs("decoder_start_token_id"), tokenizer.bos_token_id, tokenizer.cls_token_id
    )
    eos = _first_id(*from_configs("eos_token_id"), tokenizer.eos_token_id, tokenizer.sep_token_id)
    if start is None or eos is None:
        raise ValueError(
            "the model folder names no start token (decoder_start_token_id or the tokenizer's "
            "bos_token) or no end token (eos_token_id or eos_token)"
        )
    pad = _first_id(*from_configs("pad_token_id"), tokenizer.pad_token_id, eos)
    assert pad is not None

    def own(token: str) -> int | None:
        found = tokenizer.convert_tokens_to_ids(token)
        return None if found is None or found == tokenizer.unk_token_id else int(found)

    kw, sep = own(KW), own(SEP)
    if kw is None or sep is None:
        kw = sep = None
    return SpecialIds(start, eos, pad, kw, sep)


class Encoder:
    """Turns captions and keywords into token id sequences: [bos] (<kw> words <sep>) caption [eos].

    The keyword part is a prompt: it conditions the caption and is never scored by the loss.
    """

    def __init__(
        self, tokenizer: PreTrainedTokenizerFast, texts: Sequence[str] = (), model: Any = None
    ) -> None:
        self.tokenizer = tokenizer
        # Words in most captions ("on", "a", "background") say nothing about a photo: keyword
        # prompts are drawn from the rest, as a user's would be ("red car").
        counts = Counter(w for text in texts for w in set(text.split()))
        self.common = {w for w, n in counts.items() if n > len(texts) / 2}
        # The folder's own start/end/pad ids (its config's, else its tokenizer's): a base model
        # with <s> and </s> (RoBERTa, TrOCR) starts and stops on those, not on <unk>.
        ids = special_ids(tokenizer, model)
        self.bos, self.eos, self.pad = ids.start, ids.eos, ids.pad
        self.kw, self.sep = ids.kw, ids.sep

    def words(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False).input_ids

    @property
    def takes_keywords(self) -> bool:
        return self.kw is not None and self.sep is not None

    def prompt(self, keywords: str | Sequence[str] | None) -> list[int]:
        """[start] (<kw> words <sep>); keywords are left out by a tokenizer without <kw>."""
        if self.kw is None or self.sep is None:
            return [self.bos]
        words = self.words(prompt_words(keywords))[:MAX_KEYWORDS]
        return [self.bos, self.kw, *words, self.sep] if words else [self.bos]

    def training_batch(
        self, texts: Sequence[str], keyword_rate: float, rng: random.Random
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoder inputs and labels (already shifted: labels[t] is the token after inputs[t])."""
        inputs, _, labels = self.masked_batch(texts, keyword_rate, rng)
        return inputs, labels

    def masked_batch(
        self,
        texts: Sequence[str],
        keyword_rate: float,
        rng: random.Random,
        keywords: Sequence[str | Sequence[str] | None] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Decoder inputs, their attention mask (by length: a base whose pad is its start or eos
        token, as GPT-2's, still attends to those) and the shifted labels.

        A row with seller `keywords` (facts its photo cannot show, which its caption includes) is
        prompted with them, so the model learns to copy them in; at KEYWORD_DROP it is shown
        without them and without them in its caption. The others get, at
        `keyword_rate`, a prompt drawn from their own caption's words, as a user's would be."""
        given = keywords if keywords is not None else [None] * len(texts)
        seqs, starts = [], []
        for text, own in zip(texts, given, strict=True):
            prompt = [self.bos]
            words = [w for w in text.split() if w not in self.common]
            if self.takes_keywords and own:
                if rng.random() < KEYWORD_DROP:
                    text = without_phrases(text, parse_keywords(own))
                else:
                    prompt = self.prompt(own)
            elif self.takes_keywords and words and rng.random() < keyword_rate:
                picked = rng.sample(words, rng.randint(1, min(3, len(words))))
                prompt = self.prompt(" ".join(picked))
            seqs.append([*prompt, *self.words(text), self.eos])
            starts.append(len(prompt))
        width = max(map(len, seqs))
        full = torch.full((len(seqs), width), self.pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        labels = torch.full((len(seqs), width), IGNORE, dtype=torch.long)
        for i, (seq, start) in enumerate(zip(seqs, starts, strict=True)):
            full[i, : len(seq)] = torch.tensor(seq)
            mask[i, : len(seq)] = 1
            # Only caption tokens and eos are targets: the prompt is given, padding is nothing.
            labels[i, start - 1 : len(seq) - 1] = torch.tensor(seq[start:])
        return full[:, :-1], mask[:, :-1], labels[:, :-1]

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True).strip()


def without_phrases(text: str, phrases: Sequence[str]) -> str:
    """`text` with each of `phrases` (whole words) taken out once."""
    words = text.split()
    for phrase in phrases:
        part = phrase.split()
        at = next((i for i in range(len(words)) if words[i : i + len(part)] == part), None)
        if at is not None:
            del words[at : at + len(part)]
    return " ".join(words)


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
