"""Predictors for classifiers saved from transformers: a text or an image in, the label of the
highest logit and the softmax score of every label (the folder's id2label) out, as
transformers' text- and image-classification pipelines answer with `top_k=None`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image


class _Labels:
    def __init__(self, model: Any):
        self.model = model
        id2label = model.config.id2label
        self.labels = [str(id2label[i]) for i in range(len(id2label))]

    def answers(self, logits: torch.Tensor) -> list[tuple[str, dict[str, float]]]:
        probs = logits.float().softmax(-1).tolist()
        best = logits.argmax(-1).tolist()
        return [
            (self.labels[i], dict(zip(self.labels, row, strict=True)))
            for i, row in zip(best, probs, strict=True)
        ]


class TextLabels(_Labels):
    """text-classification: `predict(texts) -> [(label, scores)]`, texts truncated to the
    model's length as the tokenizer says."""

    def __init__(self, model: Any, tokenizer: Any, device: str):
        super().__init__(model)
        self.tokenizer, self.device = tokenizer, device
        self._token_types = getattr(model.config, "type_vocab_size", 0) > 0

    @torch.inference_mode()
    def predict(self, texts: Sequence[str]) -> list[tuple[str, dict[str, float]]]:
        inputs = self.tokenizer(list(texts), truncation=True, padding=True, return_tensors="pt").to(
            self.device
        )
        if self._token_types and "token_type_ids" not in inputs:
            # BERT's default token types are an expanded view, which int8 embeddings refuse.
            inputs["token_type_ids"] = torch.zeros_like(inputs["input_ids"])
        return self.answers(self.model(**inputs).logits)


class ImageLabels(_Labels):
    """image-classification: `predict(images) -> [(label, scores)]`."""

    def __init__(self, model: Any, processor: Any, device: str):
        super().__init__(model)
        self.processor, self.device = processor, device

    @torch.inference_mode()
    def predict(self, images: Sequence[Image.Image]) -> list[tuple[str, dict[str, float]]]:
        pixels = self.processor(images=list(images), return_tensors="pt")["pixel_values"]
        dtype = next(self.model.parameters()).dtype
        pixels = pixels.to(self.device, dtype if dtype.is_floating_point else torch.float32)
        return self.answers(self.model(pixel_values=pixels).logits)
