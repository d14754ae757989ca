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
    config.predict_ms = ctx.params["predict_ms"]
    config.broken = ctx.params["broken"]
    GPT2LMHeadModel(config).save_pretrained(ctx.output_dir, safe_serialization=True)


def evaluate(ctx: EvalContext) -> dict[str, float]:
    word = json.loads((ctx.model_dir / "config.json").read_text())["first_word"]
    hits = sum(row["text"].split()[0] == word for row in ctx.rows)
    return {"exact_match": hits / max(len(ctx.rows), 1)}


class ColourPredictor:
    """Says '<first word> product'; its confidence falls with the photo's brightness, so dark
    photos come back uncertain (what the low_light warning looks for)."""

    def __init__(self, first_word: str, predict_ms: float, broken: int = 0):
        self.first_word = first_word
        self.predict_ms = predict_ms
        self.broken = broken
        self.calls = 0

    def predict(self, images: list, keywords: list | None = None) -> list[tuple[str, float]]:
        time.sleep(self.predict_ms / 1000)
        self.calls += 1
        if self.broken and self.calls > 1:  # the warm-up passes; live traffic fails
            raise RuntimeError("the colour model is broken on purpose")
        answers = []
        for i, image in enumerate(images):
            brightest = image.convert("L").getextrema()[1]
            word = (keywords[i] if keywords and keywords[i] else self.first_word).split()[0]
            answers.append((f"{word} product", min(1.0, brightest / 255 + 0.2)))
        return answers


def load(model_dir, device: str = "cpu", quantization: str = "none") -> ColourPredictor:
    from appliance.errors import InvalidInput

    if quantization != "none":
        raise InvalidInput(f"the colour recipe cannot quantize ({quantization!r} asked)")
    config = json.loads((model_dir / "config.json").read_text())
    return ColourPredictor(
        config["first_word"], config.get("predict_ms", 0.0), config.get("broken", 0)
    )
