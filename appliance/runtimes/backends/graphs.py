"""A VisionEncoderDecoder captioner (any vision encoder, a GPT-2 decoder) as two graphs that
ONNX Runtime and OpenVINO can run: the encoder, which also computes every layer's
cross-attention keys and values once per image, and one decoder step over the tokens so far
(its self-attention keys and values in, the new ones out). This is the KV cache that
transformers' `generate()` keeps, as plain tensors.

The step is written out on the model's own GPT-2 modules (layer norms, projections, MLP, head)
rather than traced through `GPT2LMHeadModel.forward`, whose cache objects and mask builders
do not export: same weights, same arithmetic (scaled dot-product attention over one new
position, which attends to every cached one, so it needs no causal mask)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from appliance.errors import InvalidInput

ENCODER, DECODER = "encoder.onnx", "decoder.onnx"
MANIFEST = "graphs.json"


def unsupported_reason(config: Any) -> str | None:
    """Why this model cannot become the two graphs (None: it can)."""
    if type(config).__name__ != "VisionEncoderDecoderConfig":
        return f"only VisionEncoderDecoder captioners export; this is {type(config).__name__}"
    decoder = config.decoder
    if decoder.model_type != "gpt2":
        return f"the decoder must be GPT-2; this one is {decoder.model_type}"
    if decoder.scale_attn_by_inverse_layer_idx or decoder.reorder_and_upcast_attn:
        return "GPT-2 attention variants (scale_attn_by_inverse_layer_idx, reorder_and_upcast_attn)"
    return None


class EncoderGraph(nn.Module):
    """pixel_values → the encoder's last hidden state (for the answer's embedding) and, per
    decoder layer, the cross-attention keys and values over it."""

    def __init__(self, model: Any):
        super().__init__()
        self.encoder = model.encoder
        self.project = getattr(model, "enc_to_dec_proj", None)
        self.blocks = model.decoder.transformer.h
        self.heads = model.decoder.config.n_head

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        states = self.encoder(pixel_values=pixel_values).last_hidden_state
        projected = self.project(states) if self.project is not None else states
        out = [states]
        for block in self.blocks:
            cross = block.crossattention
            keys, values = cross.c_attn(projected).split(cross.split_size, dim=2)
            out += [_heads(keys, self.heads), _heads(values, self.heads)]
        return tuple(out)


class DecoderStep(nn.Module):
    """(input_ids [B, 1], position_ids [B, 1], cross keys/values, past keys/values) → (logits
    [B, vocab], present keys/values: the past with this position appended)."""

    def __init__(self, model: Any):
        super().__init__()
        lm = model.decoder
        self.transformer, self.head = lm.transformer, lm.lm_head
        self.heads = lm.config.n_head
        self.layers = len(self.transformer.h)

    def forward(
        self, input_ids: torch.Tensor, position_ids: torch.Tensor, *kv: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        t = self.transformer
        cross, past = kv[: 2 * self.layers], kv[2 * self.layers :]
        hidden = t.wte(input_ids) + t.wpe(position_ids)
        present: list[torch.Tensor] = []
        for i, block in enumerate(t.h):
            attn = block.attn
            q, k, v = attn.c_attn(block.ln_1(hidden)).split(attn.split_size, dim=2)
            k = torch.cat([past[2 * i], _heads(k, self.heads)], dim=2)
            v = torch.cat([past[2 * i + 1], _heads(v, self.heads)], dim=2)
            present += [k, v]
            hidden = hidden + attn.c_proj(
                _attend(_heads(q, self.heads), k, v, attn.scale_attn_weights)
            )
            xattn = block.crossattention
            q = _heads(xattn.q_attn(block.ln_cross_attn(hidden)), self.heads)
            xk, xv = cross[2 * i], cross[2 * i + 1]
            hidden = hidden + xattn.c_proj(_attend(q, xk, xv, xattn.scale_attn_weights))
            hidden = hidden + block.mlp(block.ln_2(hidden))
        logits = self.head(t.ln_f(hidden))[:, -1, :]
        return (logits, *present)


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    b, n, width = x.shape
    return x.view(b, n, heads, width // heads).transpose(1, 2)


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scaled: bool) -> torch.Tensor:
    scale = 1.0 / (q.shape[-1] ** 0.5) if scaled else 1.0
    weights = torch.softmax((q @ k.transpose(-1, -2)) * scale, dim=-1)
    out = (weights @ v).transpose(1, 2)
    return out.reshape(out.shape[0], out.shape[1], -1)


def export(model: Any, folder: Path, image_size: tuple[int, int], channels: int) -> None:
    """Write the two float32 graphs and their manifest into `folder` (which must exist)."""
    reason = unsupported_reason(model.config)
    if reason is not None:
        raise InvalidInput(reason)
    model = model.float().eval()
    config = model.decoder.config
    layers, heads, width = config.n_layer, config.n_head, config.n_embd
    kv_names = [f"{kind}_{i}" for i in range(layers) for kind in ("key", "value")]
    pixels = torch.zeros(2, channels, *image_size)
    encoder = EncoderGraph(model)
    with torch.inference_mode():
        outputs = encoder(pixels)
    sequence = outputs[1].shape[2]
    cross_names = [f"cross_{n}" for n in kv_names]
    batch = {0: "batch"}
    _export(
        encoder,
        (pixels,),
        folder / ENCODER,
        ["pixel_values"],
        ["last_hidden_state", *cross_names],
        {"pixel_values": batch, "last_hidden_state": batch, **dict.fromkeys(cross_names, batch)},
    )
    past_names = [f"past_{n}" for n in kv_names]
    present_names = [f"present_{n}" for n in kv_names]
    d = width // heads
    step_inputs = (
        torch.zeros(2, 1, dtype=torch.long),
        torch.ones(2, 1, dtype=torch.long),
        *[torch.zeros(2, heads, sequence, d) for _ in cross_names],
        *[torch.zeros(2, heads, 1, d) for _ in past_names],
    )
    past_axes = {0: "batch", 2: "past"}
    axes = {
        "input_ids": batch,
        "position_ids": batch,
        "logits": batch,
        **dict.fromkeys(cross_names, batch),
        **dict.fromkeys(past_names, past_axes),
        **{n: {0: "batch", 2: "present"} for n in present_names},
    }
    _export(
        DecoderStep(model),
        step_inputs,
        folder / DECODER,
        ["input_ids", "position_ids", *cross_names, *past_names],
        ["logits", *present_names],
        axes,
    )
    manifest = {
        "layers": layers,
        "heads": heads,
        "head_dim": d,
        "cross": cross_names,
        "past": past_names,
        "present": present_names,
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2))


def _export(
    module: nn.Module,
    args: tuple[torch.Tensor, ...],
    path: Path,
    inputs: list[str],
    outputs: list[str],
    axes: dict[str, dict[int, str]],
) -> None:
    import warnings

    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
            do_constant_folding=True,
        )
