"""Predictors that write text about an image with `model.generate()`: image-to-text (a captioner:
VisionEncoderDecoder, BLIP, GIT, Pix2Struct) and image-text-to-text (a prompted VLM: LLaVA,
Idefics3/SmolVLM), where the request's keywords go into the prompt through the model's own chat
template.

Generation is the library's: the model's generation config (decoder start, eos, pad, beams,
lengths) as saved in the folder, the KV cache, and the text decoded with the folder's tokenizer,
skipping special tokens, as transformers' image-to-text pipeline does. Added for trust
(appliance/trust/), at no extra forward pass: `output_scores`, for the confidence (the mean
probability of the generated tokens, their transition scores, beam-aware, up to and including
the end-of-sequence token) and the other signals of the tokens; and a forward hook on the vision
encoder, whose pooled output (its tokens' mean and spread) is the answer's embedding."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from PIL import Image

from appliance.trust.signals import token_signals

Answer = tuple[str, float, dict[str, Any]]

DEFAULT_PROMPT = "Describe this product for a classified ad in one sentence."


class Captions:
    """image-to-text: `predict(images, keywords) -> [(text, confidence, extras)]`. Keywords are not
    given to the model: a captioner saved from transformers was not trained to read them."""

    def __init__(self, model: Any, processor: Any, tokenizer: Any, device: str):
        self.model, self.processor, self.tokenizer = model, processor, tokenizer
        self.device = device

    @torch.inference_mode()
    def predict(
        self, images: Sequence[Image.Image], keywords: Sequence[str | None] | None = None
    ) -> list[Answer]:
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
    ) -> list[Answer]:
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
) -> list[Answer]:
    dtype = next(model.parameters()).dtype
    for key in ("pixel_values", "flattened_patches"):
        if key in inputs and inputs[key].is_floating_point() and dtype.is_floating_point:
            inputs[key] = inputs[key].to(dtype)
    rows = next(iter(inputs.values())).shape[0]
    with _pooled_vision(model, rows) as pooled:
        # The generation config passed explicitly: BLIP's generate() reads only what it is given.
        out = model.generate(
            **inputs,
            generation_config=model.generation_config,
            output_scores=True,
            return_dict_in_generate=True,
        )
    generated = out.sequences[:, prompt_length:]
    texts = tokenizer.batch_decode(generated, skip_special_tokens=True)
    signals = _signals(model, out, generated)
    embeddings: list[Any] = pooled or [None] * len(texts)
    return [
        (t.strip(), s.get("mean_prob", 0.0), {"signals": s, "embedding": e})
        for t, s, e in zip(texts, signals, embeddings, strict=True)
    ]


def _signals(model: Any, out: Any, generated: torch.Tensor) -> list[dict[str, float]]:
    """Each row's token signals (`trust.signals`), over its generated tokens to its first eos
    (inclusive); the entropies only where each step kept one row per input (no beams)."""
    scores = model.compute_transition_scores(
        out.sequences, out.scores, getattr(out, "beam_indices", None), normalize_logits=True
    )
    steps = scores.shape[1]
    tokens = generated[:, -steps:] if steps else generated[:, :0]
    entropies: list[list[float]] = []
    if steps and out.scores[0].shape[0] == tokens.shape[0]:
        per_step = [_entropy(step) for step in out.scores]
        entropies = torch.stack(per_step, dim=1).tolist()
    config = model.generation_config
    eos = config.eos_token_id
    stop = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    result = []
    for row, (row_tokens, row_scores) in enumerate(
        zip(tokens.tolist(), scores.float().tolist(), strict=True)
    ):
        probs = []
        for token, score in zip(row_tokens, row_scores, strict=True):
            probs.append(math.exp(score) if math.isfinite(score) else 0.0)
            if token in stop:
                break
        result.append(token_signals(probs, entropies[row][: len(probs)] if entropies else ()))
    return result


def _entropy(logits: torch.Tensor) -> torch.Tensor:
    log_p = logits.float().log_softmax(-1)
    return -(log_p.exp() * torch.nan_to_num(log_p, neginf=0.0)).sum(-1)


VISION_MODULES = ("vision_model", "vision_tower", "image_encoder", "vision_encoder")
"""Where a model keeps its image encoder, when it is not `get_encoder()` of an encoder-decoder."""


def vision_module(model: Any) -> Any:
    """The module that reads the image: an encoder-decoder's encoder (VisionEncoderDecoder,
    Pix2Struct), else the first vision submodule found by name (BLIP, GIT, LLaVA, Idefics3)."""
    if getattr(model.config, "is_encoder_decoder", False) and hasattr(model, "get_encoder"):
        return model.get_encoder()
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] in VISION_MODULES:
            return module
    return None


@contextmanager
def _pooled_vision(model: Any, rows: int) -> Iterator[list[Any]]:
    """While generating: the vision encoder's output pooled over its tokens (their mean and
    standard deviation, side by side), one list of floats per input, filled by a forward hook
    so the encoder runs no extra time. Left empty when the encoder saw other than one image per
    input (a VLM's image tiles)."""
    pooled: list[Any] = []
    module = vision_module(model)

    def keep(_module: Any, _args: Any, output: Any) -> None:
        states = getattr(output, "last_hidden_state", None)
        if states is None and isinstance(output, tuple | list) and output:
            states = output[0]
        if pooled or not isinstance(states, torch.Tensor) or states.dim() != 3:
            return
        if states.shape[0] == rows:  # the tokens' mean and spread, as the captioner recipe's
            states = states.float()
            pooled.extend(torch.cat([states.mean(1), states.std(1)], -1).cpu().tolist())

    handle = module.register_forward_hook(keep) if module is not None else None
    try:
        yield pooled
    finally:
        if handle is not None:
            handle.remove()
