"""Greedy decoding over the exported graphs (graphs.py), answering as the torch runtime's
`Captions` does: the caption decoded with the folder's tokenizer, skipping special tokens, its
confidence the mean probability of its tokens up to and including end-of-sequence, the other
token signals, and the encoder's pooled output as the embedding.

It is transformers' greedy `generate()` for a VisionEncoderDecoder, written out because the
graphs are not torch modules: start from the decoder start token, take the most likely token,
a finished row goes on with the pad token, stop when every row has ended or at `max_new_tokens`
(else `max_length`, which counts the start token). A generation config that asks for anything
else (beams, sampling, repetition rules, minimum lengths, forced or suppressed tokens) is
refused by `unsupported_generation`, so nothing is silently decoded differently."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from appliance.trust.signals import token_signals

Answer = tuple[str, float, dict[str, Any]]
Run = Callable[[dict[str, np.ndarray]], list[np.ndarray]]
"""A compiled graph: named inputs → its outputs, in the manifest's order."""

_DEFAULTS: dict[str, Any] = {
    "num_beams": 1,
    "do_sample": False,
    "repetition_penalty": 1.0,
    "no_repeat_ngram_size": 0,
    "min_length": 0,
    "min_new_tokens": None,
    "bad_words_ids": None,
    "suppress_tokens": None,
    "begin_suppress_tokens": None,
    "forced_bos_token_id": None,
    "forced_eos_token_id": None,
    "encoder_no_repeat_ngram_size": 0,
    "sequence_bias": None,
    "num_return_sequences": 1,
}


def unsupported_generation(config: Any) -> str | None:
    """What in this generation config greedy decoding here does not do (None: nothing)."""
    for key, default in _DEFAULTS.items():
        value = getattr(config, key, default)
        if value not in (default, None) and not (key == "min_length" and value == 0):
            return f"generation_config {key}={value!r}"
    if config.decoder_start_token_id is None:
        return "generation_config has no decoder_start_token_id"
    return None


def new_tokens(generation: Any) -> int:
    """How many tokens `generate()` writes at most: `max_new_tokens`, else `max_length` less the
    start token, except that transformers reads its own default `max_length` (20) as 20 new
    tokens after the start token."""
    if generation.max_new_tokens is not None:
        return int(generation.max_new_tokens)
    length = generation.max_length
    return 20 if length is None or length == DEFAULT_MAX_LENGTH else max(int(length) - 1, 0)


DEFAULT_MAX_LENGTH = 20


class GraphCaptions:
    """image-to-text over an encoder and a decoder-step graph: `predict(images, keywords)`."""

    def __init__(
        self,
        encoder: Run,
        step: Run,
        manifest: dict[str, Any],
        processor: Any,
        tokenizer: Any,
        generation: Any,
    ):
        self.encoder, self.step, self.manifest = encoder, step, manifest
        self.processor, self.tokenizer = processor, tokenizer
        eos = generation.eos_token_id
        self.stop = set(eos if isinstance(eos, list) else [] if eos is None else [eos])
        pad = generation.pad_token_id
        self.pad = pad if pad is not None else (min(self.stop) if self.stop else 0)
        self.start = int(generation.decoder_start_token_id)
        self.new_tokens = new_tokens(generation)

    def predict(
        self, images: Sequence[Any], keywords: Sequence[str | None] | None = None
    ) -> list[Answer]:
        pixels = self.processor(images=list(images), return_tensors="np")["pixel_values"]
        return self.generate(pixels.astype(np.float32))

    def generate(self, pixels: np.ndarray) -> list[Answer]:
        states, *cross = self.encoder({"pixel_values": pixels})
        rows = pixels.shape[0]
        m = self.manifest
        feeds: dict[str, np.ndarray] = dict(zip(m["cross"], cross, strict=True))
        empty = np.zeros((rows, m["heads"], 0, m["head_dim"]), np.float32)
        past = dict.fromkeys(m["past"], empty)
        tokens = np.full((rows, 1), self.start, np.int64)
        done = np.zeros(rows, bool)
        probs: list[list[float]] = [[] for _ in range(rows)]
        entropies: list[list[float]] = [[] for _ in range(rows)]
        for position in range(self.new_tokens):
            out = self.step(
                {
                    **feeds,
                    **past,
                    "input_ids": tokens[:, -1:],
                    "position_ids": np.full((rows, 1), position, np.int64),
                }
            )
            logits = out[0].astype(np.float64)
            past = dict(zip(m["past"], out[1:], strict=True))
            log_p = logits - logits.max(-1, keepdims=True)
            log_p -= np.log(np.exp(log_p).sum(-1, keepdims=True))
            chosen = log_p.argmax(-1)
            entropy = -(np.exp(log_p) * log_p).sum(-1)
            for row in np.flatnonzero(~done):
                probs[row].append(float(np.exp(log_p[row, chosen[row]])))
                entropies[row].append(float(entropy[row]))
            chosen = np.where(done, self.pad, chosen)
            tokens = np.concatenate([tokens, chosen[:, None]], axis=1)
            done |= np.isin(chosen, list(self.stop))
            if done.all():
                break
        texts = self.tokenizer.batch_decode(tokens.tolist(), skip_special_tokens=True)
        pooled = np.concatenate([states.mean(1), states.std(1, ddof=1)], -1).tolist()
        answers = []
        for text, p, e, embedding in zip(texts, probs, entropies, pooled, strict=True):
            signals = token_signals(p, e)
            answers.append(
                (
                    text.strip(),
                    signals.get("mean_prob", 0.0),
                    {"signals": signals, "embedding": embedding},
                )
            )
        return answers
