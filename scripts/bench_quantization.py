"""Benchmark serving quantization modes (img/s at batch 1 and 32, weight MB, captions identical to
fp32) on a trained captioner and a real-size ViT-B/16 + GPT-2. See docs/benchmarks.md."""

from __future__ import annotations

import argparse
import copy
import importlib
import os
import platform
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
MODES = ("none", "fp16", "bf16", "int8", "nf4")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--model-dir", type=Path, help="a trained captioner folder (skipped if unset)")
    p.add_argument("--modes", default=",".join(MODES), help="comma-separated (default: all)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds; best kept")
    p.add_argument("--steps", type=int, default=10, help="decoder steps on the real-size model")
    p.add_argument("--threads", type=int, default=2, help="torch threads on CPU (default 2)")
    p.add_argument("--candidates", action="store_true", help="also time CPU int8 backends")
    p.add_argument("--no-real", action="store_true", help="skip the real-size model")
    p.add_argument("--markdown-out", type=Path, help="also write the tables to this file")
    return p.parse_args(argv)


def best_times(fns: dict[str, Callable[[], Any]], rounds: int, sync: Callable) -> dict[str, float]:
    """Fastest wall time of each function over `rounds` rounds that interleave them, after one
    warm-up call each: on a shared machine the fastest run is the least disturbed one."""
    best = dict.fromkeys(fns, float("inf"))
    for fn in fns.values():
        fn()
    for _ in range(rounds):
        for name, fn in fns.items():
            sync()
            start = time.perf_counter()
            fn()
            sync()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def prepare_each(modes: list[str], load: Callable[[str], Any]) -> tuple[dict, list[dict]]:
    from appliance.serving.quantize import QuantizationUnsupported

    ready, refused = {}, []
    for mode in modes:
        try:
            ready[mode] = load(mode)
        except QuantizationUnsupported as exc:
            refused.append({"mode": mode, "refused": str(exc)})
    return ready, refused


def real_size(args: argparse.Namespace, modes: list[str], sync: Callable) -> tuple[list, list]:
    import torch
    from transformers import GPT2Config, VisionEncoderDecoderConfig, ViTConfig
    from transformers import VisionEncoderDecoderModel as Model

    from appliance.serving import quantize as q

    torch.manual_seed(0)
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(ViTConfig(), GPT2Config())
    base, dev = Model(config=config).eval(), args.device
    ready, rows = prepare_each(modes, lambda m: q.prepare_model(copy.deepcopy(base), dev, m))

    @torch.inference_mode()
    def caption(model: Any, pixels: Any) -> None:  # the encoder, then greedy steps as served
        states = model.encoder(pixel_values=pixels).last_hidden_state
        ids = torch.zeros((len(pixels), 1), dtype=torch.long, device=pixels.device)
        for _ in range(args.steps):
            logits = model(encoder_outputs=(states,), decoder_input_ids=ids).logits
            ids = torch.cat([ids, logits[:, -1].float().argmax(-1)[:, None]], dim=1)

    speed = {}
    for batch in (1, 32):
        pixels = torch.randn(batch, 3, 224, 224, device=dev)
        fns = {m: (lambda m=m, p=pixels: caption(ready[m], p)) for m in ready}
        speed[batch] = {m: batch / t for m, t in best_times(fns, args.rounds, sync).items()}
    for m, model in ready.items():
        rows.append({"mode": m, "mb": q.weight_bytes(model) / 1e6, "b1": speed[1][m]})
        rows[-1]["b32"] = speed[32][m]
    cands = candidates(base, caption, args.rounds) if args.candidates else []
    return rows, cands


def candidates(base: Any, caption: Callable, rounds: int) -> list[dict]:
    """The CPU int8 backends measured for the choice, at batch 1 on the real-size model."""
    import bitsandbytes as bnb
    import torch
    from optimum.quanto import Calibration, freeze, qint8, quantize

    from appliance.serving import quantize as q

    pixels, ids = torch.randn(1, 3, 224, 224), torch.tensor([[0, 11, 7, 3]])

    def linear(bf16: bool = False) -> Any:
        m = q.conv1d_to_linear(copy.deepcopy(base))
        if bf16:
            m.to(torch.bfloat16)
            q.cast_inputs(m, torch.bfloat16)
        return m

    def quanto(model: Any, activations: Any = None) -> Any:
        quantize(model, weights=qint8, activations=activations)
        if activations is not None:  # calibrated on random images: fine for speed, not quality
            with Calibration():
                caption(model, torch.randn(2, 3, 224, 224))
        freeze(model)
        return model

    def bnb_cpu(m: Any) -> Any:
        for parent, name, child in [(p, n, c) for p in m.modules() for n, c in p.named_children()]:
            if type(child) is torch.nn.Linear:
                setattr(parent, name, q._bnb_linear(bnb, child, torch.float32, False))
        return m.to("cpu")

    models = {
        "float32 (reference)": base,
        "torch dynamic int8 (chosen)": q.prepare_model(copy.deepcopy(base), "cpu", "int8"),
        "optimum-quanto qint8 weights": quanto(linear()),
        "optimum-quanto qint8 weights, bfloat16 activations": quanto(linear(bf16=True)),
        "optimum-quanto qint8 weights + qint8 activations": quanto(linear(), qint8),
        "bitsandbytes Linear8bitLt, CPU backend": bnb_cpu(linear()),
    }
    with torch.inference_mode():
        ref = base(pixel_values=pixels, decoder_input_ids=ids).logits
        outs = {n: m(pixel_values=pixels, decoder_input_ids=ids).logits for n, m in models.items()}
    err = {n: ((o.float() - ref).abs().max() / ref.abs().max()).item() for n, o in outs.items()}
    fns = {n: (lambda m=m: caption(m, pixels)) for n, m in models.items()}
    best = best_times(fns, rounds, lambda: None)
    return [
        {"mode": n, "mb": q.weight_bytes(m) / 1e6, "b1": 1 / best[n], "err": err[n]}
        for n, m in models.items()
    ]


def trained(args: argparse.Namespace, modes: list[str], sync: Callable) -> list[dict]:
    import torch
    from PIL import Image

    from appliance.datasets.synthetic import generate
    from appliance.recipes.catalog import load_package
    from appliance.recipes.spec import read_recipe
    from appliance.serving import quantize as q

    # Only the inference sibling: the recipe's module needs what training needs (sacrebleu).
    package = load_package(read_recipe(REPO / "models" / "captioner")).__name__
    Captioner = importlib.import_module(f"{package}.captioner_infer").Captioner

    with tempfile.TemporaryDirectory() as tmp:
        folder = generate(Path(tmp) / "eval", count=200, seed=7, low_light_fraction=0.2).path
        images = [Image.open(p).convert("RGB") for p in sorted(folder.glob("*.png"))]

    def load(mode: str) -> Any:
        cap = Captioner(args.model_dir, device="cpu")
        cap.model = q.prepare_model(cap.model, args.device, mode)
        cap.device = torch.device(args.device)
        return cap

    caps, rows = prepare_each(modes, load)

    def predict(cap: Any, batch: int, count: int) -> list[str]:
        cap.batch_size = batch
        return [text for text, *_ in cap.predict(images[:count])]

    texts = {m: predict(cap, 32, len(images)) for m, cap in caps.items()}
    speed = {}
    for batch, count in ((1, 32), (32, 192)):
        fns = {m: (lambda c=c, b=batch, n=count: predict(c, b, n)) for m, c in caps.items()}
        speed[batch] = {m: count / t for m, t in best_times(fns, args.rounds, sync).items()}
    ref = texts.get("none")
    for m, cap in caps.items():
        same = None if ref is None else sum(map(str.__eq__, texts[m], ref)) / len(ref)
        rows.append({"mode": m, "mb": q.weight_bytes(cap.model) / 1e6, "b1": speed[1][m]})
        rows[-1].update(b32=speed[32][m], same=same)
    return rows


def table(title: str, rows: list[dict]) -> str:
    base = next((r for r in rows if r["mode"] in ("none", "float32 (reference)")), None)

    def ratio(r: dict, key: str, inverse: bool = False) -> str:
        if base is None or key not in r:
            return ""
        x = base[key] / r[key] if inverse else r[key] / base[key]
        return f"{r[key]:,.2f} ({x:.2f}×)" if key != "mb" else f"{r[key]:,.1f} ({x:.2f}× less)"

    cols = ["mode", "weights MB", "img/s batch 1"]
    cols += ["max logit error vs fp32"] if "err" in rows[0] else ["img/s batch 32"]
    has_same = any("same" in r for r in rows)
    cols += ["captions identical to fp32"] if has_same else []
    out = [f"**{title}**", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        if "refused" in r:
            out.append(f"| {r['mode']} | refused: {r['refused']} |" + " |" * (len(cols) - 2))
            continue
        cells = [r["mode"], ratio(r, "mb", inverse=True), ratio(r, "b1")]
        cells += [f"{r['err']:.1%}"] if "err" in r else [ratio(r, "b32")]
        if has_same:
            cells.append("" if r.get("same") is None else f"{r['same']:.1%}")
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def machine(device: str) -> str:
    import torch

    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    cpu = next((x.split(":")[1].strip() for x in info.splitlines() if "model name" in x), "?")
    what = f"{cpu}, {torch.get_num_threads()} torch threads, {os.cpu_count()} cores visible"
    if device == "cuda":
        what = f"{torch.cuda.get_device_name()}, host {cpu} ({os.cpu_count()} cores)"
    return f"Machine: {what}; Python {platform.python_version()}, torch {torch.__version__}."


def targets(device: str, trained_rows: list[dict], real_rows: list[dict]) -> str:
    """The targets of the design, each with its measured value."""
    real = {r["mode"]: r for r in real_rows if "refused" not in r}
    out = []

    def check(what: str, value: float, goal: float, unit: str = "×") -> None:
        met = "met" if value >= goal else "NOT met"
        out.append(f"- {what}: {value:.2f}{unit} (target ≥ {goal:g}{unit}): {met}")

    if device == "cpu" and {"none", "int8"} <= set(real):
        check("int8 img/s at batch 1 vs fp32", real["int8"]["b1"] / real["none"]["b1"], 1.5)
        check("int8 weights smaller than fp32", real["none"]["mb"] / real["int8"]["mb"], 2.5)
    if device == "cuda" and {"fp16", "nf4"} <= set(real):
        check("nf4 weights smaller than fp16", real["fp16"]["mb"] / real["nf4"]["mb"], 3)
    for r in trained_rows:
        if r.get("same") is not None and r["mode"] != "none":
            check(f"{r['mode']} captions identical to fp32", 100 * r["same"], 97, "%")
    return "Targets:\n" + "\n".join(out) + "\n" if out else ""


def main(argv: list[str] | None = None) -> int:
    import torch

    args = parse_args(argv)
    warnings.filterwarnings("ignore")
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    modes = [m for m in args.modes.split(",") if m]
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    parts, small, real, cands = [machine(args.device), ""], [], [], []
    if args.model_dir is None:
        parts.append("Trained captioner: not measured (no --model-dir given).\n")
    else:
        small = trained(args, modes, sync)
        parts.append(table(f"Trained captioner ({args.device}): Captioner.predict", small))
    if not args.no_real:
        real, cands = real_size(args, modes, sync)
        steps = f"encoder + {args.steps} greedy decoder steps"
        parts.append(table(f"Real-size ViT-B/16 + GPT-2 ({args.device}): {steps}", real))
    if cands:
        parts.append(table("CPU int8 candidates, real-size model, batch 1", cands))
    parts.append(targets(args.device, small, real))
    text = "\n".join(parts)
    print(text)
    if args.markdown_out:
        args.markdown_out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
