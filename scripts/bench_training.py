"""Training benchmark: images/s of the captioner trained through the pipeline (a child process,
progress and metrics into the registry) against a bare PyTorch loop over the same model and
batches, and the wall time of a default run to the quality target.

Usage: python scripts/bench_training.py [--count 2000] [--short-epochs 3] [--skip-full]
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def bare_loop(dataset_dir: Path, rows: list[dict[str, Any]], params: dict[str, Any]) -> float:
    """The same model, data, batches and optimizer as the recipe, with nothing around it."""
    import torch
    import torch.nn.functional as F

    from appliance.recipes.catalog import load_package
    from appliance.recipes.spec import read_recipe

    package = load_package(read_recipe(ROOT / "models" / "captioner")).__name__
    build = importlib.import_module(f"{package}.captioner_build").build
    TrainImages = importlib.import_module(f"{package}.captioner_data").TrainImages
    text_module = importlib.import_module(f"{package}.captioner_text")
    IGNORE, Encoder = text_module.IGNORE, text_module.Encoder

    started = time.perf_counter()
    torch.manual_seed(params["seed"])
    rng = random.Random(params["seed"])
    model, tokenizer, processor = build(rows, params)
    model.to(memory_format=torch.channels_last).train()
    images = TrainImages(dataset_dir, rows, processor)
    texts = [str(r["text"]) for r in rows]
    text = Encoder(tokenizer, texts)
    batch = min(params["batch_size"], len(rows))
    optimizer = torch.optim.AdamW(model.parameters(), lr=params["lr"], weight_decay=0.05)
    for _ in range(params["epochs"]):
        order = list(range(len(rows)))
        rng.shuffle(order)
        for start in range(0, len(order), batch):
            idx = order[start : start + batch]
            pix = images.batch(idx, rng, params["low_light_fraction"], mirror=params["mirror"])
            pix = pix.to(memory_format=torch.channels_last)
            inputs, labels = text.training_batch(
                [texts[i] for i in idx], params["keyword_rate"], rng
            )
            logits = model(
                pixel_values=pix, decoder_input_ids=inputs,
                decoder_attention_mask=(inputs != text.pad).long(),
            ).logits  # fmt: skip
            loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
    with tempfile.TemporaryDirectory() as out:  # train() ends by saving too: same scope
        model.to(memory_format=torch.contiguous_format).save_pretrained(out)
        tokenizer.save_pretrained(out)
        processor.save_pretrained(out)
    return time.perf_counter() - started


def pipeline_run(services: Any, params: dict[str, str]) -> dict[str, Any]:
    from appliance.runs.launcher import start_run

    started = time.perf_counter()
    run = start_run(services, "bench", "captioner", "photos", params).wait()
    if run["status"] != "succeeded":
        raise SystemExit(f"the pipeline run {run['status']}: {run['error']}")
    version = services.models.by_run(run["id"])
    return {"wall": time.perf_counter() - started, "metrics": version["metrics"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="Images generated (seed 0).")
    parser.add_argument("--short-epochs", type=int, default=3, help="Epochs for the speed ratio.")
    parser.add_argument("--skip-full", action="store_true", help="Skip the default-params run.")
    parser.add_argument("--markdown-out", type=Path)
    args = parser.parse_args()
    import torch

    from appliance.datasets.synthetic import generate
    from appliance.recipes.catalog import builtin_recipes
    from appliance.recipes.split import split_rows
    from appliance.services import Services

    torch.set_num_threads(2)
    defaults = {n: p.default for n, p in builtin_recipes()["captioner"].params.items()}
    rows_out: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp, Services.open(home=Path(tmp) / "home") as services:
        photos = generate(Path(tmp) / "photos", count=args.count, seed=0, low_light_fraction=0.1)
        services.workspaces.create("bench")
        version = services.datasets.add("bench", "photos", photos.path).version
        train_rows, _ = split_rows(services.datasets.rows(version))
        dataset_dir = services.datasets.materialize(version)
        seen = args.short_epochs * len(train_rows)

        short = pipeline_run(services, {"epochs": str(args.short_epochs)})
        bare_seconds = bare_loop(dataset_dir, train_rows, {**defaults, "epochs": args.short_epochs})
        piped = seen / short["metrics"]["train_seconds"]
        bare = seen / bare_seconds
        rows_out.append((f"bare PyTorch loop, {args.short_epochs} epochs", f"{bare:.1f} img/s"))
        rows_out.append((f"pipeline train(), {args.short_epochs} epochs", f"{piped:.1f} img/s"))
        rows_out.append(("pipeline ÷ bare", f"{piped / bare:.3f} (target ≥ 0.95)"))
        rows_out.append(
            (
                "pipeline run, wall (child start, train, evaluate, register)",
                f"{short['wall']:.1f} s",
            )
        )
        if not args.skip_full:
            full = pipeline_run(services, {})
            m = full["metrics"]
            rows_out.append(
                (
                    f"default run ({defaults['epochs']} epochs): train_seconds",
                    f"{m['train_seconds']:.1f} s (target ≤ 180 s)",
                )
            )
            rows_out.append(("default run: wall, start to registered", f"{full['wall']:.1f} s"))
            held_out = (
                f"exact match normal {m['exact_match_normal']:.3f} (≥ 0.85), "
                f"low {m['exact_match_low']:.3f} (≥ 0.70), BLEU {m['bleu']:.1f}"
            )
            rows_out.append(("default run: held-out quality", held_out))
            per_attr = ", ".join(f"{k[4:]} {m[k]:.3f}" for k in sorted(m) if k.startswith("acc_"))
            rows_out.append(("default run: accuracy per attribute", per_attr))
    machine = f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, 2 threads"
    table = "\n".join(
        ["| measurement | result |", "| --- | --- |", *(f"| {a} | {b} |" for a, b in rows_out)]
    )
    text = f"Machine: {machine}; {args.count} images, {len(train_rows)} for training\n\n{table}\n"
    print(text)
    if args.markdown_out:
        args.markdown_out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
