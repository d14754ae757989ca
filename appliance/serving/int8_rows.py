"""A decoder's output head, and the embedding tied to it, stored as one int8 table with a float32
scale per row (symmetric, absmax / 127), in plain torch.

The bitsandbytes modes use it for that one matrix. It is the largest in a GPT-2 decoder (50257 ×
768, a sixth of a ViT-B + GPT-2 captioner), so leaving it in the compute dtype costs nf4 most of
its saving, while nf4 on it lost captions (on an earlier captioner) and LLM.int8's cuBLASLt
matmul failed on it on an H200 (docs/benchmarks.md, "Quantization"). The head holds the table
and the embedding reads it from the head, so it is stored once and stays tied wherever the model
moves. The head dequantizes a block of rows at a time, so its working memory stays a few MB
whatever the vocabulary.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

BLOCK_ROWS = 4096


def quantize_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(int8 table, float32 scale per row) with `table[i] * scale[i]` ≈ `weight[i]`."""
    source = weight.detach().float()
    scale = source.abs().amax(dim=1).clamp(min=torch.finfo(torch.float32).tiny) / 127
    table = torch.round(source / scale[:, None]).clamp(-127, 127).to(torch.int8)
    return table, scale


class Int8RowsLinear(nn.Module):
    """`x @ weight.T (+ bias)` with `weight` stored as int8 rows and their scales."""

    def __init__(self, table: nn.Parameter, scale: nn.Parameter, bias: nn.Parameter | None):
        super().__init__()
        self.weight = table
        self.scale = scale
        self.bias = bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = self.weight.shape[0]
        out = torch.empty(*x.shape[:-1], rows, dtype=x.dtype, device=x.device)
        for start in range(0, rows, BLOCK_ROWS):
            stop = min(start + BLOCK_ROWS, rows)
            part = F.linear(x, self.weight[start:stop].to(x.dtype))  # int8 values are exact
            out[..., start:stop] = part.float().mul_(self.scale[start:stop])
        if self.bias is not None:
            out += self.bias
        return out


class Int8RowsEmbedding(nn.Module):
    """Row lookups in the table of an `Int8RowsLinear`, in `dtype`. It reads the head's
    parameters at each call instead of holding them, so that no move of the model (`.to(...)`
    rebuilds parameters between some devices) can untie the two or store the table twice."""

    def __init__(self, head: Int8RowsLinear, dtype: torch.dtype):
        super().__init__()
        self._head = (head,)  # in a tuple: not registered as a submodule, moved once
        self.compute_dtype = dtype

    @property
    def weight(self) -> nn.Parameter:
        return self._head[0].weight

    @property
    def scale(self) -> nn.Parameter:
        return self._head[0].scale

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        rows = F.embedding(ids, self.weight).float().mul_(self.scale[ids].unsqueeze(-1))
        return rows.to(self.compute_dtype)


def int8_output_head(model: nn.Module, dtype: torch.dtype) -> bool:
    """Replace `model`'s output head (an `nn.Linear`), and every `nn.Embedding` tied to it, by
    int8 rows sharing one table. In place; False when the model has no such head."""
    get = getattr(model, "get_output_embeddings", None)
    head = get() if callable(get) else None
    if type(head) is not nn.Linear:
        return False
    table, scale = quantize_rows(head.weight)
    bias = None
    if head.bias is not None:
        bias = nn.Parameter(head.bias.detach().to(dtype), requires_grad=False)
    rows = Int8RowsLinear(
        nn.Parameter(table, requires_grad=False), nn.Parameter(scale, requires_grad=False), bias
    )
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if child is head:
                setattr(parent, name, rows)
            elif type(child) is nn.Embedding and child.weight is head.weight:
                setattr(parent, name, Int8RowsEmbedding(rows, dtype))
    return True
