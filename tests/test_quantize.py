"""Quantization for serving: every allowed mode runs and stays close to float32, refused ones
fail loudly, GPT-2's Conv1D becomes Linear without changing outputs. Tiny random models."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch import nn
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    VisionEncoderDecoderConfig,
    VisionEncoderDecoderModel,
    ViTConfig,
)
from transformers.pytorch_utils import Conv1D

from appliance.errors import InvalidInput
from appliance.serving.int8_rows import Int8RowsEmbedding, Int8RowsLinear
from appliance.serving.quantize import (
    MODES,
    QuantizationUnsupported,
    check_supported,
    conv1d_to_linear,
    prepare_model,
    weight_bytes,
)

CPU_ALLOWED = ("none", "bf16", "int8", "nf4")
CPU_REFUSED = ("fp16",)
# Largest |output - float32 output| as a share of the largest |float32 output|.
TOLERANCE = {"none": 1e-6, "fp16": 0.02, "bf16": 0.05, "int8": 0.1, "nf4": 0.5}
needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(autouse=True)
def _quiet() -> None:
    warnings.filterwarnings("ignore", category=DeprecationWarning)


@pytest.fixture(scope="module")
def tiny() -> VisionEncoderDecoderModel:
    """A ViT + GPT-2 captioner shaped like the real one, small enough to run in milliseconds."""
    torch.manual_seed(0)
    encoder = ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
    )
    decoder = GPT2Config(
        vocab_size=40,
        n_positions=16,
        n_embd=64,
        n_layer=2,
        n_head=2,
        bos_token_id=0,
        eos_token_id=1,
    )
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    model = VisionEncoderDecoderModel(config=config).eval()
    # Weights far from their init, so that errors show: GPT-2's init (std 0.02) makes near-zero
    # logits that any quantization would match.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


def inputs(device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    pixels = torch.randn(3, 3, 32, 32, generator=gen)  # float32, as callers pass them
    ids = torch.randint(0, 40, (3, 5), generator=gen)
    return pixels.to(device), ids.to(device)


@torch.inference_mode()
def captions_logits(model: nn.Module, device: str = "cpu") -> torch.Tensor:
    """The serving path: the encoder alone, then the joint model over encoder states."""
    pixels, ids = inputs(device)
    states = model.encoder(pixel_values=pixels).last_hidden_state
    return model(encoder_outputs=(states,), decoder_input_ids=ids).logits.float().cpu()


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    return ((out - ref).abs().max() / ref.abs().max()).item()


def test_conv1d_to_linear_keeps_outputs(tiny: VisionEncoderDecoderModel) -> None:
    model = copy.deepcopy(tiny)
    conv1d = sum(isinstance(m, Conv1D) for m in model.modules())
    linear = sum(type(m) is nn.Linear for m in model.modules())
    assert conv1d > 0
    ref = captions_logits(model)
    converted = conv1d_to_linear(model)
    assert converted is model
    assert not any(isinstance(m, Conv1D) for m in model.modules())
    assert sum(type(m) is nn.Linear for m in model.modules()) == linear + conv1d
    torch.testing.assert_close(captions_logits(model), ref, rtol=1e-5, atol=1e-5)


def small_gpt2(vocab: int) -> GPT2LMHeadModel:
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=vocab, n_positions=8, n_embd=16, n_layer=1, n_head=2)
    config.bos_token_id = config.eos_token_id = 0
    return GPT2LMHeadModel(config).eval()


def test_conv1d_to_linear_on_a_bare_gpt2() -> None:
    model = small_gpt2(vocab=30)
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        ref = model(ids).logits
        attn = model.transformer.h[0].attn.c_attn
        conv1d_to_linear(model)
        linear = model.transformer.h[0].attn.c_attn
        assert type(linear) is nn.Linear
        assert (linear.in_features, linear.out_features) == (16, 48)
        torch.testing.assert_close(linear.weight, attn.weight.t())
        torch.testing.assert_close(model(ids).logits, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", CPU_ALLOWED)
def test_cpu_mode_runs_close_to_float32(tiny: VisionEncoderDecoderModel, mode: str) -> None:
    ref = captions_logits(tiny)
    model = prepare_model(copy.deepcopy(tiny), "cpu", mode)
    assert not model.training
    out = captions_logits(model)
    assert out.shape == ref.shape
    assert relative_error(out, ref) < TOLERANCE[mode]
    if mode != "nf4":  # 4 bits move these random logits enough to swap near-ties
        assert out.argmax(-1).eq(ref.argmax(-1)).float().mean() >= 0.8


def test_int8_on_cpu_quantizes_every_linear(tiny: VisionEncoderDecoderModel) -> None:
    model = prepare_model(copy.deepcopy(tiny), "cpu", "int8")
    assert not any(type(m) in (nn.Linear, nn.Embedding, Conv1D) for m in model.modules())


@pytest.mark.parametrize(("mode", "smaller"), [("bf16", 1.9), ("int8", 2.5), ("nf4", 3.5)])
def test_weight_bytes_shrink(tiny: VisionEncoderDecoderModel, mode: str, smaller: float) -> None:
    full = weight_bytes(tiny)
    assert full >= 4 * sum(p.numel() for p in tiny.parameters())
    assert weight_bytes(prepare_model(copy.deepcopy(tiny), "cpu", mode)) * smaller < full


def test_weight_bytes_counts_tied_weights_once() -> None:
    model = small_gpt2(vocab=1000)
    assert model.lm_head.weight is model.transformer.wte.weight
    unique = {id(p): p for p in model.parameters()}.values()
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    assert weight_bytes(model) == 4 * sum(p.numel() for p in unique) + buffers


def test_nf4_stores_the_tied_output_head_once_as_int8_rows_and_the_rest_nf4(
    tiny: VisionEncoderDecoderModel,
) -> None:
    import bitsandbytes as bnb

    model = prepare_model(copy.deepcopy(tiny), "cpu", "nf4")
    head, wte = model.decoder.lm_head, model.decoder.transformer.wte
    assert type(head) is Int8RowsLinear and type(wte) is Int8RowsEmbedding
    assert head.weight is wte.weight and head.weight.dtype == torch.int8
    assert head.scale is wte.scale
    assert isinstance(model.decoder.transformer.wpe, bnb.nn.Embedding4bit)
    linear = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert linear and all(isinstance(m, bnb.nn.Linear4bit) for m in linear)


def test_nf4_embedding_lookups_match_the_dequantized_table() -> None:
    import bitsandbytes.functional as bnbf

    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(4096, 64))
    model = prepare_model(model, "cpu", "nf4")
    weight = model[0].weight
    table = bnbf.dequantize_4bit(weight.data, weight.quant_state)
    ids = torch.tensor([[0, 1, 1000, 2047, 4095]])
    with torch.inference_mode():
        torch.testing.assert_close(model(ids).float(), table[ids].float())


@pytest.mark.parametrize("mode", ["bf16", "nf4"])
def test_half_models_accept_float32_inputs(tiny: VisionEncoderDecoderModel, mode: str) -> None:
    pixels, ids = inputs()
    with torch.inference_mode():
        states = tiny.encoder(pixel_values=pixels).last_hidden_state  # float32, from elsewhere
    bare = copy.deepcopy(tiny).to(torch.bfloat16)
    with pytest.raises(RuntimeError, match="dtype"), torch.inference_mode():
        bare(encoder_outputs=(states,), decoder_input_ids=ids)  # what the pre-hooks are for
    model = prepare_model(copy.deepcopy(tiny), "cpu", mode)
    dtype = model.decoder.transformer.ln_f.weight.dtype  # nf4 computes in float32 without bf16
    with torch.inference_mode():
        logits = model(encoder_outputs=(states,), decoder_input_ids=ids).logits
        encoded = model.encoder(pixel_values=pixels).last_hidden_state
        joint = model(pixel_values=pixels, decoder_input_ids=ids).logits
    assert logits.dtype == encoded.dtype == joint.dtype == dtype
    assert logits.shape == joint.shape == (3, 5, 40)


@pytest.mark.parametrize("mode", CPU_REFUSED)
def test_refused_cpu_modes_fail_loudly(tiny: VisionEncoderDecoderModel, mode: str) -> None:
    with pytest.raises(QuantizationUnsupported, match=rf"'{mode}'.*'cpu'.*use bf16"):
        check_supported("cpu", mode)
    model = copy.deepcopy(tiny)
    with pytest.raises(QuantizationUnsupported):
        prepare_model(model, "cpu", mode)
    assert next(model.parameters()).dtype == torch.float32  # untouched: no silent fallback


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
@pytest.mark.parametrize("mode", MODES)
def test_cuda_refused_without_a_gpu(tiny: VisionEncoderDecoderModel, mode: str) -> None:
    with pytest.raises(QuantizationUnsupported, match=rf"'{mode}'.*'cuda'.*no CUDA GPU.*'cpu'"):
        check_supported("cuda", mode)
    with pytest.raises(QuantizationUnsupported):
        prepare_model(copy.deepcopy(tiny), "cuda", mode)


@pytest.mark.parametrize(
    ("device", "mode", "words"),
    [("cpu", "int4", "unknown quantization mode 'int4'"), ("mps", "int8", "device 'mps'")],
)
def test_unknown_mode_or_device(device: str, mode: str, words: str) -> None:
    with pytest.raises(QuantizationUnsupported, match=words) as info:
        check_supported(device, mode)
    assert isinstance(info.value, InvalidInput)
    assert info.value.http_status == 400


def test_allowed_cpu_modes_pass_the_check() -> None:
    for mode in CPU_ALLOWED:
        check_supported("cpu", mode)


@needs_gpu
@pytest.mark.parametrize("mode", MODES)
def test_cuda_mode_runs_close_to_float32(tiny: VisionEncoderDecoderModel, mode: str) -> None:
    check_supported("cuda", mode)
    ref = captions_logits(tiny)
    model = prepare_model(copy.deepcopy(tiny), "cuda", mode)
    assert next(model.parameters()).device.type == "cuda"
    assert not torch.backends.cuda.cudnn_sdp_enabled()
    out = captions_logits(model, "cuda")
    assert relative_error(out, ref) < max(TOLERANCE[mode], 5e-3)  # TF32 convolutions on GPUs
    if mode in ("int8", "nf4"):
        assert weight_bytes(model) * 2 < weight_bytes(tiny)
