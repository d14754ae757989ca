"""Benchmark the Hugging Face runtime on real-size models built from configs (random weights,
seeded; appliance.testing.hf_folders): img/s at batch 1 and 32 and weight memory per mode.

- ViT-B/16 + GPT-2 base (VisionEncoderDecoder): the runtime (`generate()`, KV cache) against the
  captioner's greedy decoding (the path every model was served by before the runtime; until
  2026-12-04 it re-ran the decoder over the whole sequence at each step, since then it keeps
  the decoder's cache too), in one run, with the captions of both compared (identical share).
- BLIP-base and a SmolVLM-256M-size Idefics3 through the runtime (`--models`).

Every model writes `--tokens` tokens per image (the builder makes end-of-sequence unreachable,
so every path does the same work). See docs/benchmarks.md ("Hugging Face runtime")."""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from bench_quantization import machine  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--models", default="vit-gpt2", help="comma-separated: vit-gpt2, blip, idefics3")
    p.add_argument("--modes", default="none,int8", help="comma-separated quantization modes")
    p.add_argument("--batches", default="1,32", help="comma-separated batch sizes")
    p.add_argument("--tokens", type=int, default=20, help="tokens written per image")
    p.add_argument("--rounds", type=int, default=2, help="interleaved timing rounds; best kept")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--image-size", type=int, default=224, help="side of the test photos")
    p.add_argument("--work", type=Path, help="folder for the built models (default: a temp one)")
    p.add_argument("--markdown-out", type=Path, help="also write the tables to this file")
    return p.parse_args(argv)


def best(fns: dict[str, Callable[[], Any]], rounds: int) -> dict[str, float]:
    """Fastest wall time of each function over interleaved rounds, after one warm-up call."""
    times = dict.fromkeys(fns, float("inf"))
    for fn in fns.values():
        fn()
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name] = min(times[name], time.perf_counter() - start)
    return times


def build_folder(kind: str, work: Path, tokens: int) -> Path:
    from appliance.testing.hf_folders import build

    folder = work / f"{kind}-base"
    if not (folder / "config.json").is_file():
        build(kind, folder, size="base")
    path = folder / "generation_config.json"
    config = json.loads(path.read_text()) if path.is_file() else {}
    config.update(num_beams=1, max_new_tokens=tokens, do_sample=False)
    config.pop("max_length", None)
    path.write_text(json.dumps(config, indent=2))
    return folder


def photos(count: int, size: int) -> list[Any]:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    return [
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(count)
    ]


def greedy_path(folder: Path, model: Any, tokens: int) -> Callable[[list[Any]], list[str]]:
    """The captioner recipe's decoding (captioner_infer.greedy) over the same model."""
    import torch
    from transformers import AutoImageProcessor, AutoTokenizer

    from appliance.recipes.catalog import builtin_recipes, load_package

    package = load_package(builtin_recipes()["captioner"])
    infer = importlib.import_module(f"{package.__name__}.captioner_infer")
    processor = AutoImageProcessor.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    start = model.config.decoder_start_token_id
    eos = model.generation_config.eos_token_id

    @torch.inference_mode()
    def caption(images: list[Any]) -> list[str]:
        pixels = processor(images=images, return_tensors="pt").pixel_values
        pixels = pixels.to(next(model.parameters()).dtype)
        states = model.encoder(pixel_values=pixels).last_hidden_state
        out = infer.greedy(model, states, [start], eos, max_new_tokens=tokens)
        return [tokenizer.decode(ids, skip_special_tokens=True).strip() for ids, *_ in out]

    return caption


def measure(args: argparse.Namespace, kind: str, folder: Path) -> list[dict[str, Any]]:
    from appliance.runtimes.huggingface.detect import detect
    from appliance.runtimes.huggingface.runtime import load_model, load_predictor
    from appliance.serving.quantize import QuantizationUnsupported, prepare_model, weight_bytes

    detected = detect(folder)
    batches = [int(b) for b in args.batches.split(",")]
    images = photos(max(batches), args.image_size)
    rows = []
    for mode in args.modes.split(","):
        try:
            runtime = load_predictor(folder, detected, "cpu", mode)
        except QuantizationUnsupported as exc:
            rows.append({"model": kind, "mode": mode, "refused": str(exc)})
            continue
        paths = {"runtime": lambda ims, r=runtime: [t for t, *_ in r.predict(ims)]}
        if kind == "vit-gpt2":
            base = prepare_model(copy.deepcopy(load_model(folder, detected)), "cpu", mode)
            paths["greedy (before)"] = greedy_path(folder, base, args.tokens)
        row: dict[str, Any] = {"model": kind, "mode": mode, "mb": weight_bytes(runtime.model) / 1e6}
        for batch in batches:
            chunk = images[:batch]
            fns = {name: (lambda f=f, c=chunk: f(c)) for name, f in paths.items()}
            for name, seconds in best(fns, args.rounds).items():
                row[f"{name} b{batch}"] = batch / seconds
            if "greedy (before)" in paths:
                a, b = paths["runtime"](chunk), paths["greedy (before)"](chunk)
                row[f"same b{batch}"] = sum(x == y for x, y in zip(a, b, strict=True)) / batch
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    keys = sorted({k for r in rows for k in r if k.endswith(tuple("0123456789"))} - {"mb"})
    keys = [k for k in keys if not k.startswith("same")] + [k for k in keys if k.startswith("same")]
    head = ["model", "mode", "weights MB", *map(_label, keys)]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if "refused" in r:
            out.append(f"| {r['model']} | {r['mode']} | refused: {r['refused']} |")
            continue
        cells = [r["model"], r["mode"], f"{r['mb']:,.0f}"]
        for k in keys:
            v = r.get(k)
            cells.append("" if v is None else f"{v:.0%}" if k.startswith("same") else f"{v:.3g}")
        out.append("| " + " | ".join(cells) + " |")
    ratios = []
    for r in rows:
        for b in args_batches(rows):
            run, old = r.get(f"runtime b{b}"), r.get(f"greedy (before) b{b}")
            if run and old:
                ratios.append(
                    f"- {r['model']} {r['mode']} batch {b}: the runtime writes {run / old:.2f}× "
                    "the images per second of the greedy path"
                )
    return "\n".join(out) + "\n\n" + "\n".join(ratios) + "\n"


def _label(key: str) -> str:
    path, batch = key.rsplit(" b", 1)
    return (
        f"captions identical, batch {batch}" if path == "same" else f"{path}, img/s batch {batch}"
    )


def args_batches(rows: list[dict[str, Any]]) -> list[str]:
    return sorted(
        {k.rsplit(" b", 1)[1] for r in rows for k in r if k.startswith("runtime b")}, key=int
    )


def main(argv: list[str] | None = None) -> int:
    import torch

    args = parse_args(argv)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        work = args.work or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        rows = []
        for kind in args.models.split(","):
            rows += measure(args, kind, build_folder(kind, work, args.tokens))
    text = f"{machine('cpu')}\n\n{table(rows)}"
    print(text)
    if args.markdown_out:
        args.markdown_out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
