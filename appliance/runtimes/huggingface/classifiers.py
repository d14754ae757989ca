"""Predictors for classifiers saved from transformers: a text or an image in, the label of the
highest logit and the softmax score of every label (the folder's id2label) out, as
transformers' text- and image-classification pipelines answer with `top_k=None`; and, for trust
(appliance/trust/), the last hidden layer mean-pooled over the input's tokens as its embedding."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

Answer = tuple[str, dict[str, float], dict[str, Any]]
"""(label, every label's score, {"embedding": [...]})."""


def _pooled(out: Any, mask: torch.Tensor | None) -> list[Any]:
    """The last hidden layer averaged over the input's positions (its real tokens for a text),
    one list of floats per input; empty when the model gives no such layer."""
    hidden = getattr(out, "hidden_states", None)
    states = hidden[-1] if hidden else None
    if not isinstance(states, torch.Tensor):
        return []
    states = states.float()
    if states.dim() == 4:  # a convolutional model's (batch, channels, height, width) map
        return states.mean((2, 3)).cpu().tolist()
    if mask is not None and mask.shape == states.shape[:2]:
        weights = mask.to(states.dtype).unsqueeze(-1)
        return ((states * weights).sum(1) / weights.sum(1).clamp(min=1)).cpu().tolist()
    return states.mean(1).cpu().tolist()


class _Labels:
    def __init__(self, model: Any):
        self.model = model
        id2label = model.config.id2label
        self.labels = [str(id2label[i]) for i in range(len(id2label))]

    def answers(self, out: Any, mask: torch.Tensor | None = None) -> list[Answer]:
        logits = out.logits
        probs = logits.float().softmax(-1).tolist()
        best = logits.argmax(-1).tolist()
        embeddings = _pooled(out, mask) or [None] * len(best)
        return [
            (self.labels[i], dict(zip(self.labels, row, strict=True)), {"embedding": e})
            for i, row, e in zip(best, probs, embeddings, strict=True)
        ]


class TextLabels(_Labels):
    """text-classification: `predict(texts) -> [(label, scores, extras)]`, texts truncated to the
    model's length as the tokenizer says."""

    def __init__(self, model: Any, tokenizer: Any, device: str):
        super().__init__(model)
        self.tokenizer, self.device = tokenizer, device
        self._token_types = getattr(model.config, "type_vocab_size", 0) > 0

    @torch.inference_mode()
    def predict(self, texts: Sequence[str]) -> list[Answer]:
        inputs = self.tokenizer(list(texts), truncation=True, padding=True, return_tensors="pt").to(
            self.device
        )
        if self._token_types and "token_type_ids" not in inputs:
            # BERT's default token types are an expanded view, which int8 embeddings refuse.
            inputs["token_type_ids"] = torch.zeros_like(inputs["input_ids"])
        out = self.model(**inputs, output_hidden_states=True)
        return self.answers(out, inputs.get("attention_mask"))


class ImageLabels(_Labels):
    """image-classification: `predict(images) -> [(label, scores, extras)]`."""

    def __init__(self, model: Any, processor: Any, device: str):
        super().__init__(model)
        self.processor, self.device = processor, device

    @torch.inference_mode()
    def predict(self, images: Sequence[Image.Image]) -> list[Answer]:
        pixels = self.processor(images=list(images), return_tensors="pt")["pixel_values"]
        dtype = next(self.model.parameters()).dtype
        pixels = pixels.to(self.device, dtype if dtype.is_floating_point else torch.float32)
        return self.answers(self.model(pixel_values=pixels, output_hidden_states=True))
