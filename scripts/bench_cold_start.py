"""Benchmark a cold start: how long the first request to an endpoint unloaded after its keep-alive
takes, against the endpoint's load time (the deploy: load + warm-up). The target is within 2x.
Over real HTTP on loopback, with BERT text classifiers built here. See docs/benchmarks.md."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
AD = {"text": "Red striped mug, barely used, dishwasher safe."}
SIZES = {"tiny": None, "50mb": (512, 4), "base": (768, 12)}  # hidden size, layers


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sizes", default="tiny,50mb,base", help=f"of {', '.join(SIZES)}")
    p.add_argument("--rounds", type=int, default=5, help="cold starts per size (median kept)")
    p.add_argument("--keep-alive", type=int, default=1, help="keep_alive_s of the endpoint")
    return p.parse_args(argv)


def build(size: str, root: Path) -> Path:
    from appliance.testing.hf_folders import build as build_folder

    folder = build_folder("bert-cls", root / f"bert-{size}")
    if SIZES[size] is None:
        return folder
    from transformers import BertConfig, BertForSequenceClassification

    hidden, layers = SIZES[size]  # type: ignore[misc]
    config = json.loads((folder / "config.json").read_text())
    config.update(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=hidden // 64,
                  intermediate_size=hidden * 4)  # fmt: skip
    for stale in folder.glob("*.safetensors"):
        stale.unlink()
    BertForSequenceClassification(BertConfig(**config)).save_pretrained(folder)
    return folder


def bench(http: httpx.Client, endpoint: str, model: str, rounds: int, keep: int) -> dict:
    started = time.perf_counter()
    body = {"workspace": "bench", "endpoint": endpoint, "model": model, "keep_alive_s": keep}
    answer = http.post("/v1/deployments", json=body)
    answer.raise_for_status()
    load_ms = (time.perf_counter() - started) * 1000
    memory = answer.json()
    colds, waits, warms = [], [], []
    for _ in range(rounds):
        while (
            next(d for d in http.get("/v1/deployments").json() if d["endpoint"] == endpoint)[
                "resident"
            ]
            != "cold"
        ):
            time.sleep(0.05)
        started = time.perf_counter()
        cold = http.post(f"/v1/endpoints/{endpoint}/predict", json=AD)
        colds.append((time.perf_counter() - started) * 1000)
        waits.append(cold.json()["cold_start_ms"])
        started = time.perf_counter()
        http.post(f"/v1/endpoints/{endpoint}/predict", json=AD).raise_for_status()
        warms.append((time.perf_counter() - started) * 1000)
    cold_ms = statistics.median(colds)
    return {
        "model": model, "memory_mb": memory["memory_mb"], "source": memory["memory_source"],
        "load_ms": load_ms, "cold_ms": cold_ms, "waited_ms": statistics.median(waits),
        "warm_ms": statistics.median(warms), "ratio": cold_ms / load_ms,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from appliance.models.intake import register_folder
    from appliance.server.background import serving_in_background
    from appliance.services import Services

    root = Path(tempfile.mkdtemp(prefix="bench-cold-"))
    try:
        with Services.open(home=root / "home") as services:
            services.workspaces.create("bench")
            for size in args.sizes.split(","):
                register_folder(services, "bench", size, build(size, root), check=False)
            rows = []
            with (
                serving_in_background(services, restore=False) as base,
                httpx.Client(base_url=base, timeout=300) as http,
            ):
                for size in args.sizes.split(","):
                    rows.append(bench(http, size, f"{size}@1", args.rounds, args.keep_alive))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"python {platform.python_version()}; median of {args.rounds} cold starts")  # fmt: skip
    print("| model | memory MB | load (deploy) ms | cold request ms | of which waiting for the "
          "load ms | warm request ms | cold / load |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| bert-{r['model']} | {r['memory_mb']:g} ({r['source']}) | {r['load_ms']:.0f} | "
              f"{r['cold_ms']:.0f} | {r['waited_ms']:.0f} | {r['warm_ms']:.1f} | "
              f"{r['ratio']:.2f}x |")  # fmt: skip


if __name__ == "__main__":
    main()
