"""Inference for a saved text-classifier folder: batched, truncated, a probability per label,
and the last hidden layer averaged over each text's tokens (its embedding, for trust)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


class TextClassifier:
    """A loaded classifier: `predict` texts to (label, probability per label, {"embedding"})."""

    def __init__(self, model: Any, tokenizer: Any, device: str, batch_size: int = 64):
        self.model = model
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        self.batch_size = batch_size
        config = model.config
        self.labels = [config.id2label[i] for i in range(config.num_labels)]
        self.max_length = min(tokenizer.model_max_length, config.max_position_embeddings)

    @torch.inference_mode()
    def predict(self, texts: Sequence[str]) -> list[tuple[str, dict[str, float], dict[str, Any]]]:
        results: list[tuple[str, dict[str, float], dict[str, Any]]] = []
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
            out = self.model(**batch, token_type_ids=types, output_hidden_states=True)
            probs = out.logits.float().softmax(-1).cpu().tolist()
            mask = batch["attention_mask"].unsqueeze(-1).float()
            states = out.hidden_states[-1].float()
            pooled = ((states * mask).sum(1) / mask.sum(1).clamp(min=1)).cpu().tolist()
            for row, embedding in zip(probs, pooled, strict=True):
                best = max(range(len(row)), key=row.__getitem__)
                scores = dict(zip(self.labels, row, strict=True))
                results.append((self.labels[best], scores, {"embedding": embedding}))
        return results
