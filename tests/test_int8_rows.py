"""The int8-rows output head that the bitsandbytes modes use: close to float32, one table shared
by the head and its tied embedding, and the tie kept when the model moves."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from transformers import GPT2Config, GPT2LMHeadModel

from appliance.serving import int8_rows
from appliance.serving.int8_rows import (
    Int8RowsEmbedding,
    Int8RowsLinear,
    int8_output_head,
    quantize_rows,
)
from appliance.serving.quantize import weight_bytes


def gpt2(vocab: int = 300) -> GPT2LMHeadModel:
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=vocab, n_positions=8, n_embd=32, n_layer=1, n_head=2)
    model = GPT2LMHeadModel(config).eval()
    with torch.no_grad():  # away from the init's tiny weights, so that rounding shows
        model.transformer.wte.weight.normal_(0, 1)
    return model


def test_rows_round_to_within_half_a_step_and_zero_rows_stay_zero() -> None:
    weight = torch.randn(50, 16) * torch.linspace(0.01, 10, 50)[:, None]
    weight[7] = 0
    table, scale = quantize_rows(weight)
    assert table.dtype == torch.int8 and scale.dtype == torch.float32
    assert table.abs().amax(dim=1)[weight.abs().amax(dim=1) > 0].eq(127).all()
    error = (table.float() * scale[:, None] - weight).abs()
    assert (error <= scale[:, None] / 2 + 1e-6).all()
    assert table[7].eq(0).all()


def test_head_matches_the_dequantized_matrix_across_blocks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(int8_rows, "BLOCK_ROWS", 7)  # 50 rows: 8 blocks, the last one short
    weight, bias = torch.randn(50, 16), torch.randn(50)
    table, scale = quantize_rows(weight)
    param = nn.Parameter(table, requires_grad=False)
    head = Int8RowsLinear(param, nn.Parameter(scale, requires_grad=False), nn.Parameter(bias))
    x = torch.randn(3, 4, 16)
    out = head(x)
    assert out.shape == (3, 4, 50) and out.dtype == torch.float32
    dequantized = table.float() * scale[:, None]
    torch.testing.assert_close(out, F.linear(x, dequantized, bias), rtol=1e-5, atol=1e-5)
    reference = F.linear(x, weight, bias)
    assert ((out - reference).abs().max() / reference.abs().max()).item() < 0.02


def test_embedding_rows_are_the_dequantized_rows_in_the_compute_dtype() -> None:
    table, scale = quantize_rows(torch.randn(40, 8))
    head = Int8RowsLinear(
        nn.Parameter(table, requires_grad=False), nn.Parameter(scale, requires_grad=False), None
    )
    embedding = Int8RowsEmbedding(head, torch.bfloat16)
    assert list(embedding.parameters()) == []  # the head holds the table
    ids = torch.tensor([[0, 5, 39], [5, 5, 1]])
    rows = embedding(ids)
    assert rows.dtype == torch.bfloat16 and rows.shape == (2, 3, 8)
    expected = (table.float() * scale[:, None])[ids].to(torch.bfloat16)
    torch.testing.assert_close(rows, expected)


def test_a_gpt2_keeps_its_answers_and_stores_the_tied_table_once() -> None:
    model = gpt2()
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.inference_mode():
        reference = model(ids).logits
    before = weight_bytes(model)
    assert int8_output_head(model, torch.float32)
    head, wte = model.lm_head, model.transformer.wte
    assert type(head) is Int8RowsLinear and type(wte) is Int8RowsEmbedding
    assert head.weight is wte.weight
    with torch.inference_mode():
        logits = model(ids).logits
    assert logits.argmax(-1).equal(reference.argmax(-1))
    assert ((logits - reference).abs().max() / reference.abs().max()).item() < 0.02
    # the 300 × 32 table: 4 bytes a value before; 1 byte a value and 4 per row's scale after
    assert before - weight_bytes(model) == 300 * 32 * 3 - 300 * 4


def test_the_tie_survives_moving_the_model() -> None:
    model = gpt2()
    int8_output_head(model, torch.float32)
    # a move that rebuilds parameters: plain tied weights come apart here
    nn.Module.to(model, "meta")
    assert model.lm_head.weight is model.transformer.wte.weight
    assert model.lm_head.weight.device.type == "meta"
    assert model.lm_head.scale is model.transformer.wte.scale


def test_a_model_without_a_linear_head_is_left_alone() -> None:
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 10))
    assert not int8_output_head(model, torch.float32)
    assert type(model[1]) is nn.Linear
