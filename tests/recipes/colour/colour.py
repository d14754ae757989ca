"""A tiny real recipe: "learns" the most common first word of the training descriptions and
saves it in a real Hugging Face folder (a 1-layer GPT-2 with safetensors weights)."""

from __future__ import annotations

import json
import os
import time
from collections import Counter

from appliance.recipes.context import EvalContext, TrainContext


def train(ctx: TrainContext) -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    steps = ctx.params["steps"]
    for step in range(1, steps + 1):
        time.sleep(ctx.params["step_seconds"])
        ctx.report.progress(step, steps, loss=1.0 / step)
        if ctx.params["crash"] == "raise":
            raise RuntimeError("the colour recipe crashed on purpose")
        if ctx.params["crash"] == "exit":
            os._exit(3)
    counts = Counter(row["text"].split()[0] for row in ctx.train_rows)
    ranked = [word for word, _ in counts.most_common()]
    config = GPT2Config(vocab_size=16, n_positions=8, n_embd=4, n_layer=1, n_head=1)
    rank = ctx.params["rank"]
    config.first_word = ranked[rank] if rank < len(ranked) else "(none)"
    GPT2LMHeadModel(config).save_pretrained(ctx.output_dir, safe_serialization=True)


def evaluate(ctx: EvalContext) -> dict[str, float]:
    word = json.loads((ctx.model_dir / "config.json").read_text())["first_word"]
    hits = sum(row["text"].split()[0] == word for row in ctx.rows)
    return {"exact_match": hits / max(len(ctx.rows), 1)}
