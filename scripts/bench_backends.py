"""Benchmark the CPU backends on captioners: torch (fp32, dynamic int8), ONNX Runtime (fp32,
dynamic int8, static int8 calibrated on held-out rows) and OpenVINO (fp32, int8, bf16), over
the graphs of appliance/runtimes/backends/, each served as the deployment would serve it.

Models: `trained` (a trained captioner folder, `--trained`), `vit-gpt2` (real-size ViT-B/16 +
GPT-2 124M from configs, random seeded weights, `--tokens` tokens per image), `blip`
(BLIP-base from config: torch only when no backend exports it; the table says why).

Reported: img/s at batch 1 and 8 (best of interleaved rounds after a warm-up), the share of
captions identical to torch fp32 on the same photos (greedy), and for the real-size model the
roofline: FLOPs and weight bytes per image, this CPU's measured GEMM peaks, and the share of
them each backend reaches. See docs/benchmarks.md ("CPU backends")."""

from __future__ import annotations

import argparse
import json
import shutil
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

from bench_hf_runtime import build_folder, photos  # noqa: E402
from bench_quantization import machine  # noqa: E402

VARIANTS = (
    "torch/none",
    "torch/int8",
    "onnxruntime/none",
    "onnxruntime/int8",
    "onnxruntime/int8-static",
    "openvino/none",
    "openvino/int8",
    "openvino/bf16",
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--models", default="trained,vit-gpt2,blip")
    p.add_argument("--trained", type=Path, help="a trained captioner's folder (for `trained`)")
    p.add_argument("--calibration", type=Path, help="its dataset folder: held-out rows calibrate")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--compare", type=int, default=200, help="photos compared on `trained`")
    p.add_argument("--calibration-rows", type=int, default=32, help="held-out rows (trained)")
    p.add_argument("--real-calibration-rows", type=int, default=4, help="photos (real-size)")
    p.add_argument("--tokens", type=int, default=20, help="tokens per image (real-size models)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--work", type=Path, help="folder for built models and exports")
    p.add_argument("--markdown-out", type=Path)
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


def held_out_images(folder: Path, count: int) -> list[Any]:
    from PIL import Image

    from appliance.recipes.split import is_held_out

    names = sorted(p for p in folder.glob("*.png") if is_held_out(p.name))[:count]
    return [Image.open(p).convert("RGB") for p in names]


def generated_photos(work: Path, count: int) -> list[Any]:
    """The trained captioner's comparison photos (bench_quantization's: seed 7)."""
    from PIL import Image

    from appliance.datasets.synthetic import generate

    folder = work / "compare-photos"
    if not folder.is_dir():
        generate(folder, count=count, seed=7, low_light_fraction=0.2)
    return [Image.open(p).convert("RGB") for p in sorted(folder.rglob("*.png"))[:count]]


def predictor(folder: Path, variant: str, work: Path, calibration: list[Any]) -> Any:
    from appliance.runtimes.backends import onnx
    from appliance.runtimes.backends.export import COMPLETE, cached
    from appliance.runtimes.backends.runtime import load_predictor as backend_predictor
    from appliance.runtimes.huggingface.detect import detect
    from appliance.runtimes.huggingface.runtime import load_predictor

    backend, mode = variant.split("/")
    detected = detect(folder)
    if backend == "torch":
        return load_predictor(folder, detected, "cpu", mode)
    target = work / "exports" / folder.name / f"{backend}-{mode}"
    if mode == "int8-static":  # the fp32 export, quantized with ranges from held-out rows
        fp32_dir = target.with_name(f"{backend}-none")
        fp32 = backend_predictor(folder, detected, backend, "none", fp32_dir)

        def build(into: Path) -> None:
            for file in fp32_dir.iterdir():
                if file.name != COMPLETE:
                    shutil.copy(file, into)
            onnx.quantize_static(into, recorded_feeds(fp32, calibration))

        cached(target, build)
        return backend_predictor(folder, detected, backend, "none", target)
    return backend_predictor(folder, detected, backend, mode, target)


def recorded_feeds(captions: Any, images: list[Any]) -> dict[str, list[dict[str, Any]]]:
    """Each graph's inputs as the float32 graphs saw them, over `images` one at a time."""
    from appliance.runtimes.backends.graphs import DECODER, ENCODER

    feeds: dict[str, list[dict[str, Any]]] = {ENCODER: [], DECODER: []}
    encoder, step = captions.encoder, captions.step

    def rec(name: str, run: Any) -> Any:
        return lambda f: (feeds[name].append(dict(f)), run(f))[1]

    captions.encoder, captions.step = rec(ENCODER, encoder), rec(DECODER, step)
    for image in images:
        captions.predict([image])
    captions.encoder, captions.step = encoder, step
    steps = feeds[DECODER]  # at most MAX_STEP_FEEDS, evenly spaced (the calibrator keeps them all)
    feeds[DECODER] = steps[:: max(1, len(steps) // MAX_STEP_FEEDS)][:MAX_STEP_FEEDS]
    return feeds


MAX_STEP_FEEDS = 64


def measure(args: argparse.Namespace, kind: str, folder: Path, work: Path) -> list[dict[str, Any]]:
    from appliance.errors import ApplianceError

    trained = kind == "trained"
    if trained:
        compare = generated_photos(work, args.compare)
        calibration = (
            held_out_images(args.calibration, args.calibration_rows)
            if args.calibration
            else compare[: args.calibration_rows]
        )
    else:
        compare = photos(8, 224)
        calibration = photos(args.real_calibration_rows, 224)
    timed = compare[:8]
    loaded: dict[str, Any] = {}
    rows: list[dict[str, Any]] = []
    for variant in args.variants.split(","):
        try:
            loaded[variant] = predictor(folder, variant, work, calibration)
        except (ApplianceError, ImportError, RuntimeError, ValueError) as exc:
            rows.append(
                {"model": kind, "variant": variant, "refused": f"{type(exc).__name__}: {exc}"[:300]}
            )
            print(json.dumps(rows[-1]), flush=True)
    reference = (
        [t for t, *_ in loaded["torch/none"].predict(compare)] if "torch/none" in loaded else None
    )
    timings: dict[str, dict[str, float]] = {}
    for batch in (1, 8):

        def call(p: Any, batch: int = batch) -> None:
            for start in range(0, len(timed), batch):
                p.predict(timed[start : start + batch])

        fns = {v: (lambda p=p: call(p)) for v, p in loaded.items()}
        for variant, seconds in best(fns, args.rounds).items():
            timings.setdefault(variant, {})[f"b{batch}"] = len(timed) / seconds
    for variant, p in loaded.items():
        row: dict[str, Any] = {"model": kind, "variant": variant, **timings[variant]}
        if reference is not None:
            mine = [t for t, *_ in p.predict(compare)]
            row["same"] = sum(a == b for a, b in zip(mine, reference, strict=True)) / len(mine)
            row["compared"] = len(mine)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def roofline(folder: Path, tokens: int) -> dict[str, float]:
    """FLOPs of one image's `generate()` (torch's counter over fp32) and weights read per
    image: the encoder once, the decoder's matrices at every step (batch 1 reads them all),
    its token embedding only a row per step."""
    from torch.utils.flop_counter import FlopCounterMode

    from appliance.runtimes.huggingface.detect import detect
    from appliance.runtimes.huggingface.runtime import load_predictor

    captions = load_predictor(folder, detect(folder), "cpu", "none")
    with FlopCounterMode(display=False) as counter:
        captions.predict(photos(1, 224))
    model = captions.model
    encoder = sum(p.numel() for p in model.encoder.parameters())
    decoder = sum(
        p.numel() for n, p in model.decoder.named_parameters() if "wte" not in n and "wpe" not in n
    )
    decoder += model.decoder.lm_head.weight.numel()  # tied to wte: read whole by the head
    return {
        "flops": float(counter.get_total_flops()),
        "params_read": float(encoder + tokens * decoder),
        "encoder_params": float(encoder),
        "decoder_params_per_step": float(decoder),
    }


def peaks(threads: int) -> dict[str, float]:
    """Achievable GFLOP/s (GOP/s for int8) of one large GEMM per dtype, and memory GB/s."""
    import torch

    torch.set_num_threads(threads)
    m, k, n = 1024, 2048, 2048

    def rate(fn: Callable[[], Any], work: float) -> float:
        fn()
        start, runs = time.perf_counter(), 10
        for _ in range(runs):
            fn()
        return work * runs / (time.perf_counter() - start) / 1e9

    x, w = torch.randn(m, k), torch.randn(k, n)
    xi = torch.randint(-128, 127, (m, k), dtype=torch.int8)
    wi = torch.randint(-128, 127, (k, n), dtype=torch.int8)
    xb, wb = x.bfloat16(), w.bfloat16()
    big = torch.empty(64 * 2**20, dtype=torch.uint8)
    out = torch.empty_like(big)
    return {
        "fp32": rate(lambda: torch.mm(x, w), 2 * m * k * n),
        "bf16": rate(lambda: torch.mm(xb, wb), 2 * m * k * n),
        "int8": rate(lambda: torch._int_mm(xi, wi), 2 * m * k * n),
        "memory_gbs": rate(lambda: out.copy_(big), 2 * big.numel()),
    }


def tables(
    rows: list[dict[str, Any]], roof: dict[str, float] | None, peak: dict[str, float]
) -> str:
    out = [
        "| model | backend / mode | img/s batch 1 | img/s batch 8 | vs torch int8, batch 1 "
        "| captions identical to torch fp32 |",
        "|---|---|---|---|---|---|",
    ]
    base = {r["model"]: r.get("b1") for r in rows if r["variant"] == "torch/int8"}
    for r in rows:
        if "refused" in r:
            out.append(f"| {r['model']} | {r['variant']} | not run: {r['refused']} | | | |")
            continue
        ratio = f"{r['b1'] / base[r['model']]:.2f}×" if base.get(r["model"]) else ""
        same = (
            f"{r['same']:.1%} of {r['compared']}" if "same" in r and r["model"] == "trained" else ""
        )
        out.append(
            f"| {r['model']} | {r['variant']} | {r['b1']:.3g} | {r['b8']:.3g} | {ratio} | {same} |"
        )
    text = "\n".join(out) + "\n"
    text += (
        f"\nPeaks measured here (one {1024}×{2048}×{2048} GEMM, torch): fp32 {peak['fp32']:.0f} "
        f"GFLOP/s, bf16 {peak['bf16']:.0f} GFLOP/s, int8 {peak['int8']:.0f} GOP/s; memory copy "
        f"{peak['memory_gbs']:.1f} GB/s.\n"
    )
    if roof is not None:
        flops, params = roof["flops"], roof["params_read"]
        text += (
            f"\nReal-size ViT-B/16 + GPT-2, per image at batch 1: {flops / 1e9:.1f} GFLOP "
            f"(encoder {roof['encoder_params'] / 1e6:.0f}M parameters once, decoder "
            f"{roof['decoder_params_per_step'] / 1e6:.0f}M read at each step), weights read "
            f"{params * 4 / 1e9:.2f} GB in fp32, {params * 2 / 1e9:.2f} GB in bf16, "
            f"{params / 1e9:.2f} GB in int8.\n\n"
        )
        text += (
            "| backend / mode | img/s batch 1 | GFLOP/s | share of its dtype's GEMM peak "
            "| weight GB/s | share of memory copy rate |\n|---|---|---|---|---|---|\n"
        )
        for r in rows:
            if r["model"] != "vit-gpt2" or "refused" in r:
                continue
            mode = r["variant"].split("/")[1]
            dtype = "int8" if mode.startswith("int8") else "bf16" if mode == "bf16" else "fp32"
            width = {"int8": 1, "bf16": 2, "fp32": 4}[dtype]
            achieved = flops * r["b1"] / 1e9
            bandwidth = params * width * r["b1"] / 1e9
            text += (
                f"| {r['variant']} | {r['b1']:.3g} | {achieved:.0f} | {achieved / peak[dtype]:.1%} "
                f"of {dtype} | {bandwidth:.1f} | {bandwidth / peak['memory_gbs']:.0%} |\n"
            )
    return text


def main(argv: list[str] | None = None) -> int:
    import logging

    import torch

    args = parse_args(argv)
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        work = args.work or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        peak = peaks(args.threads)  # first, with nothing else loaded
        print(json.dumps(peak), flush=True)
        rows: list[dict[str, Any]] = []
        roof = None
        for kind in args.models.split(","):
            if kind == "trained":
                if args.trained is None:
                    raise SystemExit("--trained FOLDER is needed for the `trained` model")
                folder = args.trained
            else:
                folder = build_folder(kind, work, args.tokens)
            rows += measure(args, kind, folder, work)
            if kind == "vit-gpt2":
                roof = roofline(folder, args.tokens)
                print(json.dumps(roof), flush=True)
    text = f"{machine('cpu')}\n\n{tables(rows, roof, peak)}"
    print(text)
    if args.markdown_out:
        args.markdown_out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
