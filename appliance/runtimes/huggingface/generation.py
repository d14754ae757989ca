"""Predictors that write text about an image with `model.generate()`: image-to-text (a captioner:
VisionEncoderDecoder, BLIP, GIT, Pix2Struct) and image-text-to-text (a prompted VLM: LLaVA,
Idefics3/SmolVLM), where the request's keywords go into the prompt through the model's own chat
template.

Generation is the library's: the model's generation config (decoder start, eos, pad, beams,
lengths) as saved in the folder, the KV cache, and the text decoded with the folder's tokenizer,
skipping special tokens, as transformers' image-to-text pipeline does. The only thing added is
`output_scores`, for the confidence: the mean probability of the generated tokens (their
transition scores, beam-aware), up to and including the end-of-sequence token."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

DEFAULT_PROMPT = "Describe this product for a classified ad in one sentence."


class Captions:
    """image-to-text: `predict(images, keywords) -> [(text, confidence)]`. Keywords are not
    given to the model: a captioner saved from transformers was not trained to read them."""

    def __init__(self, model: Any, processor: Any, tokenizer: Any, device: str):
        self.model, self.processor, self.tokenizer = model, processor, tokenizer
        self.device = device

    @torch.inference_mode()
    def predict(
        self, images: Sequence[Image.Image], keywords: Sequence[str | None] | None = None
    ) -> list[tuple[str, float]]:
        inputs = self.processor(images=list(images), return_tensors="pt").to(self.device)
        return _generate(self.model, self.tokenizer, dict(inputs), prompt_length=0)


class PromptedCaptions:
    """image-text-to-text: one user turn holding the image and the instruction (with the seller's
    keywords), through the processor's chat template; the answer is what the model writes after
    the prompt."""

    def __init__(
        self,
        model: Any,
        processor: Any,
        device: str,
        instruction: str = DEFAULT_PROMPT,
        keywords: bool = True,
    ):
        self.model, self.processor, self.device = model, processor, device
        self.instruction = instruction
        self.keywords = keywords  # False for a VLM registered as image-to-text: no keywords
        tokenizer = processor.tokenizer
        tokenizer.padding_side = "left"  # a decoder-only batch continues from its last column
        self.tokenizer = tokenizer

    def prompt(self, keywords: str | None) -> str:
        text = self.instruction + (f" Seller keywords: {keywords}." if keywords else "")
        content = [{"type": "image"}, {"type": "text", "text": text}]
        messages = [{"role": "user", "content": content}]
        return str(self.processor.apply_chat_template(messages, add_generation_prompt=True))

    @torch.inference_mode()
    def predict(
        self, images: Sequence[Image.Image], keywords: Sequence[str | None] | None = None
    ) -> list[tuple[str, float]]:
        if keywords is None or not self.keywords:
            keywords = [None] * len(images)
        prompts = [self.prompt(k) for k in keywords]
        inputs = self.processor(
            images=[[image] for image in images], text=prompts, return_tensors="pt", padding=True
        ).to(self.device)
        return _generate(
            self.model, self.tokenizer, dict(inputs), prompt_length=inputs["input_ids"].shape[1]
        )


def _generate(
    model: Any, tokenizer: Any, inputs: dict[str, Any], prompt_length: int
) -> list[tuple[str, float]]:
    dtype = next(model.parameters()).dtype
    for key in ("pixel_values", "flattened_patches"):
        if key in inputs and inputs[key].is_floating_point() and dtype.is_floating_point:
            inputs[key] = inputs[key].to(dtype)
    # The generation config passed explicitly: BLIP's generate() reads only what it is given.
    out = model.generate(
        **inputs,
        generation_config=model.generation_config,
        output_scores=True,
        return_dict_in_generate=True,
    )
    generated = out.sequences[:, prompt_length:]
    texts = tokenizer.batch_decode(generated, skip_special_tokens=True)
    confidences = _confidences(model, out, generated)
    return [(t.strip(), c) for t, c in zip(texts, confidences, strict=True)]


def _confidences(model: Any, out: Any, generated: torch.Tensor) -> list[float]:
    """Mean probability of each row's generated tokens, to its first eos (inclusive)."""
    scores = model.compute_transition_scores(
        out.sequences, out.scores, getattr(out, "beam_indices", None), normalize_logits=True
    )
    steps = scores.shape[1]
    tokens = generated[:, -steps:] if steps else generated[:, :0]
    config = model.generation_config
    eos = config.eos_token_id
    stop = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    result = []
    for row_tokens, row_scores in zip(tokens.tolist(), scores.float().tolist(), strict=True):
        probs = []
        for token, score in zip(row_tokens, row_scores, strict=True):
            probs.append(math.exp(score) if math.isfinite(score) else 0.0)
            if token in stop:
                break
        result.append(sum(probs) / len(probs) if probs else 0.0)
    return result
