"""Make a loaded torch model ready to serve on a device with a quantization mode.

`check_supported(device, mode)` is cheap and runs before any weights are loaded;
`prepare_model(model, device, mode)` returns the model in eval mode, on the device, quantized.
A mode the device cannot honour raises `QuantizationUnsupported`: never a silent fallback.

| mode | cpu | cuda |
|---|---|---|
| none | float32 | float32 |
| fp16 | refused: slower than bf16 (emulated without AVX-512 FP16) | float16 |
| bf16 | bfloat16 | bfloat16 (GPUs with native bfloat16) |
| int8 | torch dynamic int8 (x86/fbgemm kernels) | bitsandbytes LLM.int8, float16 elsewhere |
| nf4 | bitsandbytes nf4, bfloat16 compute | bitsandbytes nf4, bfloat16 compute |

int8 and nf4 store every `nn.Linear` and `nn.Embedding` weight quantized (the embedding of a
GPT-2 decoder is a sixth of the model). The bitsandbytes modes (int8 on CUDA, nf4) store the
output head and the embedding tied to it as one int8 table with a scale per row (`int8_rows`), in
plain torch rather than through bitsandbytes. GPT-2's `Conv1D` layers, Linears with the weight
stored transposed, become `nn.Linear` first so that the quantizers see them. A model cast to a
half dtype gets forward pre-hooks that cast floating inputs (float32 `pixel_values`) to that
dtype. On CUDA, PyTorch's cuDNN attention backend is turned off (`avoid_cudnn_attention`).
docs/benchmarks.md ("Quantization") has the measurements behind these choices.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from appliance.errors import InvalidInput

if TYPE_CHECKING:
    import torch

MODES = ("none", "fp16", "bf16", "int8", "nf4")
DEVICES = ("cpu", "cuda")
CPU_MODES = ("none", "bf16", "int8", "nf4")


class QuantizationUnsupported(InvalidInput):
    """The quantization mode cannot run on this device or with the installed backends."""


def _refuse(device: str, mode: str, why: str, instead: str) -> QuantizationUnsupported:
    return QuantizationUnsupported(
        f"quantization {mode!r} is not supported on device {device!r}: {why}; {instead}"
    )


def check_supported(device: str, mode: str) -> None:
    """Raise `QuantizationUnsupported` unless `mode` can run on `device` ("cpu" or "cuda")."""
    if mode not in MODES:
        raise QuantizationUnsupported(
            f"unknown quantization mode {mode!r} (device {device!r}): "
            f"choose one of {', '.join(MODES)}"
        )
    if device not in DEVICES:
        raise QuantizationUnsupported(
            f"quantization {mode!r} cannot be prepared for device {device!r}: "
            f"the device must be one of {', '.join(DEVICES)}"
        )
    if device == "cpu":
        _check_cpu(mode)
    else:
        _check_cuda(mode)


def _check_cpu(mode: str) -> None:
    import torch

    if mode == "fp16":
        raise _refuse(
            "cpu",
            mode,
            "torch's float16 on CPU is slower than bfloat16 at the same memory (emulated on "
            "CPUs without AVX-512 FP16, where it measured slower than float32)",
            "on CPU use bf16 (the same memory) or int8 (half of that, and faster)",
        )
    if mode == "int8":
        engines = torch.backends.quantized.supported_engines
        if not {"x86", "fbgemm"} & set(engines) or _dynamic_quantization() is None:
            raise _refuse(
                "cpu",
                mode,
                f"torch {torch.__version__} has no dynamic int8 kernels for this CPU "
                f"(quantized engines: {', '.join(engines) or 'none'})",
                "use none or bf16",
            )
    if mode == "nf4":
        _require_bitsandbytes("cpu", mode, "on CPU use int8")


def _check_cuda(mode: str) -> None:
    import torch

    if not torch.cuda.is_available():
        built = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU only"
        raise _refuse(
            "cuda",
            mode,
            f"torch {torch.__version__} ({built}) sees no CUDA GPU on this machine",
            f"deploy on device 'cpu' with one of {', '.join(CPU_MODES)}",
        )
    name = torch.cuda.get_device_name()
    if mode == "bf16" and not torch.cuda.is_bf16_supported(including_emulation=False):
        raise _refuse("cuda", mode, f"{name} has no native bfloat16", "use fp16")
    if mode in ("int8", "nf4"):
        _require_bitsandbytes("cuda", mode, "use fp16 or bf16")
        major, minor = torch.cuda.get_device_capability()
        if mode == "int8" and (major, minor) < (7, 5):
            raise _refuse(
                "cuda",
                mode,
                f"LLM.int8 needs compute capability 7.5 or newer and {name} has {major}.{minor}",
                "use fp16 or nf4",
            )


def _require_bitsandbytes(device: str, mode: str, instead: str) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from bitsandbytes.cextension import ErrorHandlerMockBNBNativeLibrary, lib
    except Exception as exc:  # a broken install raises more than ImportError
        raise _refuse(
            device,
            mode,
            f"{mode} needs bitsandbytes, which cannot be imported ({type(exc).__name__}: {exc})",
            instead,
        ) from None
    if isinstance(lib, ErrorHandlerMockBNBNativeLibrary):
        raise _refuse(
            device, mode, "bitsandbytes is installed but its native library did not load", instead
        )


def _dynamic_quantization() -> Any:
    """torch's `quantize_dynamic`, or None. torch.ao.quantization is deprecated in favour of
    torchao (not a dependency) but still ships, and is the fastest CPU int8 path measured."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from torch.ao.quantization import quantize_dynamic
    except ImportError:
        return None
    return quantize_dynamic


def prepare_model(model: torch.nn.Module, device: str, mode: str) -> torch.nn.Module:
    """The model ready for inference: in eval mode, on `device`, quantized to `mode`.

    Changes `model` in place and may return another object: use the returned one.
    """
    import torch

    check_supported(device, mode)
    if device == "cuda":
        avoid_cudnn_attention()
    model.eval()
    if mode == "none":
        return model.to(device)
    if mode in ("fp16", "bf16"):
        dtype = torch.float16 if mode == "fp16" else torch.bfloat16
        model = model.to(device=device, dtype=dtype)
        cast_inputs(model, dtype)
        return model
    conv1d_to_linear(model)
    if mode == "int8" and device == "cpu":
        return _int8_cpu(model)
    return _bitsandbytes(model, device, four_bit=mode == "nf4")


def avoid_cudnn_attention() -> None:
    """Turn off PyTorch's cuDNN backend for scaled-dot-product attention (process-wide; SDPA
    then uses its flash, memory-efficient or math kernels). On an H200 the real-size nf4
    captioner failed inside it with `mha_graph.execute(...).is_good()`, the assertion of a
    known shape-dependent cuDNN bug (pytorch/pytorch#134001, #190321), whose workaround is this."""
    import torch

    torch.backends.cuda.enable_cudnn_sdp(False)


def _int8_cpu(model: torch.nn.Module) -> torch.nn.Module:
    """Dynamic int8: Linear weights int8 per output channel, activations quantized per call;
    Embedding weights 8-bit per row."""
    import torch
    from torch import nn

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.ao.quantization import (
            float_qparams_weight_only_qconfig,
            per_channel_dynamic_qconfig,
        )

        engines = torch.backends.quantized.supported_engines
        torch.backends.quantized.engine = "x86" if "x86" in engines else "fbgemm"
        spec: dict[Any, Any] = {
            nn.Linear: per_channel_dynamic_qconfig,
            nn.Embedding: float_qparams_weight_only_qconfig,
        }
        return _dynamic_quantization()(model.to("cpu"), spec, dtype=torch.qint8, inplace=True)


def _bitsandbytes(model: torch.nn.Module, device: str, *, four_bit: bool) -> torch.nn.Module:
    """Every nn.Linear and nn.Embedding becomes its bitsandbytes int8 or nf4 twin; the rest is
    cast to the compute dtype. Weights are quantized as the modules move to `device`."""
    import torch
    from torch import nn

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import bitsandbytes as bnb
        from bitsandbytes.functional import has_avx512bf16

    from appliance.serving.int8_rows import int8_output_head

    if not four_bit:
        dtype = torch.float16  # LLM.int8's kernels compute in float16
    elif device == "cuda":
        native = torch.cuda.is_bf16_supported(including_emulation=False)
        dtype = torch.bfloat16 if native else torch.float16
    else:
        dtype = torch.bfloat16 if has_avx512bf16() else torch.float32
    model.to(dtype)
    # The output head and its tied embedding: int8 rows in plain torch, not bitsandbytes.
    int8_output_head(model, dtype)

    def swap(parent: nn.Module) -> None:
        for name, child in parent.named_children():
            if type(child) is nn.Linear:
                setattr(parent, name, _bnb_linear(bnb, child, dtype, four_bit))
            elif type(child) is nn.Embedding:
                setattr(parent, name, _bnb_embedding(bnb, child, dtype, four_bit))
            else:
                swap(child)

    swap(model)
    model = model.to(device)
    cast_inputs(model, dtype)
    return model


def _bnb_linear(bnb: Any, linear: torch.nn.Linear, dtype: torch.dtype, four_bit: bool) -> Any:
    from torch import nn

    weight = linear.weight.data.to("cpu")
    new: Any
    if four_bit:
        new = bnb.nn.Linear4bit(
            linear.in_features,
            linear.out_features,
            bias=linear.bias is not None,
            compute_dtype=dtype,
            compress_statistics=True,
            quant_type="nf4",
        )
        new.weight = bnb.nn.Params4bit(
            weight, requires_grad=False, compress_statistics=True, quant_type="nf4", module=new
        )
    else:
        new = bnb.nn.Linear8bitLt(
            linear.in_features,
            linear.out_features,
            bias=linear.bias is not None,
            has_fp16_weights=False,
            threshold=6.0,
        )
        new.weight = bnb.nn.Int8Params(weight, requires_grad=False, has_fp16_weights=False)
    if linear.bias is not None:
        new.bias = nn.Parameter(linear.bias.data.to("cpu", dtype), requires_grad=False)
    return new


def _bnb_embedding(
    bnb: Any, embedding: torch.nn.Embedding, dtype: torch.dtype, four_bit: bool
) -> Any:
    shape = (embedding.num_embeddings, embedding.embedding_dim)
    weight = embedding.weight.data.to("cpu")
    new: Any
    if four_bit:
        new = bnb.nn.EmbeddingNF4(*shape, dtype=dtype)
        # Plain statistics: a lookup gathers rows of absmax, which nested ones would scramble.
        new.weight = bnb.nn.Params4bit(
            weight, requires_grad=False, compress_statistics=False, quant_type="nf4", module=new
        )
    else:
        new = bnb.nn.Embedding8bit(*shape, dtype=dtype)
        new.weight = bnb.nn.Int8Params(weight, requires_grad=False, has_fp16_weights=False)
    new.padding_idx = embedding.padding_idx
    return new


def conv1d_to_linear(model: torch.nn.Module) -> torch.nn.Module:
    """Replace every transformers `Conv1D` (GPT-2's projections) by the equivalent `nn.Linear`.

    Conv1D computes x @ W + b with W stored (in, out); nn.Linear stores (out, in). Same outputs,
    but quantizers that only know nn.Linear now see these layers. In place; returns `model`.
    """
    import torch
    from torch import nn
    from transformers.pytorch_utils import Conv1D

    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, Conv1D):
                weight = child.weight.detach()
                linear = nn.Linear(
                    child.nx, child.nf, bias=True, device=weight.device, dtype=weight.dtype
                )
                with torch.no_grad():
                    linear.weight.copy_(weight.t())
                    linear.bias.copy_(child.bias.detach())
                linear.requires_grad_(child.weight.requires_grad)
                setattr(parent, name, linear)
    return model


def cast_inputs(model: torch.nn.Module, dtype: torch.dtype) -> None:
    """Cast floating-point tensor inputs to `dtype` before `model` and its direct children run.

    The children are the other entry points callers use (`model.encoder(pixel_values=...)`).
    Integer inputs (token ids) pass unchanged, and so do tensors inside other objects.
    """
    import torch

    def cast(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return value.to(dtype) if value.is_floating_point() and value.dtype != dtype else value
        if type(value) in (tuple, list):
            return type(value)(cast(v) for v in value)
        return value

    def hook(module: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        return cast(args), {k: cast(v) for k, v in kwargs.items()}

    for module in (model, *model.children()):
        module.register_forward_pre_hook(hook, with_kwargs=True)


def weight_bytes(model: torch.nn.Module) -> int:
    """Bytes held by the model's weights: parameters and buffers, quantized ones at their packed
    size plus their scales, each shared tensor (tied embeddings) once."""
    import torch

    seen: set[tuple[int, int, torch.dtype]] = set()
    alive: list[torch.Tensor] = []  # unpacked copies stay alive so no address is reused
    total = 0

    def add(value: Any) -> None:
        nonlocal total
        if isinstance(value, tuple | list):
            for v in value:
                add(v)
            return
        if not isinstance(value, torch.Tensor):
            return
        if value.is_quantized:  # torch.ao: an int8 tensor with per-tensor or per-row scales
            total += value.numel() * value.element_size()
            if value.qscheme() != torch.per_tensor_affine:
                add(value.q_per_channel_scales())
                add(value.q_per_channel_zero_points())
            return
        if type(value) not in (torch.Tensor, torch.nn.Parameter) and hasattr(
            value, "__tensor_flatten__"
        ):  # a tensor subclass holding its data in inner tensors (optimum-quanto)
            names, _ = value.__tensor_flatten__()
            if names:
                add([getattr(value, name) for name in names])
                return
        key = (value.data_ptr(), value.numel(), value.dtype)
        if key in seen:
            return
        seen.add(key)
        alive.append(value)
        total += value.numel() * value.element_size()
        # bitsandbytes keeps the scales of its int8/nf4 weights beside the data
        add(getattr(value, "SCB", None))
        state = getattr(value, "quant_state", None)
        while state is not None:
            add([state.absmax, state.code, getattr(state, "offset", None)])
            state = getattr(state, "state2", None)

    for module in model.modules():
        add(list(module._parameters.values()))
        add(list(module._buffers.values()))
        # torch dynamic quantization keeps int8 weights packed in these modules, not as tensors
        if type(module).__name__ == "LinearPackedParams":
            add(module._weight_bias())  # type: ignore[operator]
        elif type(module).__name__ == "EmbeddingPackedParams":
            add(module._weight())  # type: ignore[operator]
    return total
