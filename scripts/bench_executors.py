"""Benchmark the run executors: the same text-classifier run (one torch thread either way)
trained in a local child process and on a one-node Ray head on loopback
(appliance/testing/ray_head.py), rounds alternating. Reports each run's wall time, the time to
its first progress report, the recipe's own training time, and Ray's overhead (wall time over
local). See docs/benchmarks.md."""

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
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rounds", type=int, default=2, help="runs per executor (median kept)")
    p.add_argument("--ads", type=int, default=2000, help="ads in the generated dataset")
    p.add_argument("--epochs", type=int, default=3, help="the text classifier's epochs")
    return p.parse_args(argv)


def one_run(services: Any, executor: str, address: str | None, epochs: int) -> dict[str, Any]:
    from appliance.runs.launcher import start_run

    started = time.perf_counter()
    first: list[float] = []

    def poll(run: dict[str, Any]) -> None:
        if run["progress"] and not first:
            first.append(time.perf_counter() - started)

    params = {"epochs": str(epochs), "threads": "1"}
    run = start_run(
        services, "bench", "text-classifier", "ads", params, executor=executor,
        ray_address=address,
    ).wait(poll, interval=0.05)  # fmt: skip
    if run["status"] != "succeeded":
        raise SystemExit(f"the {executor} run {run['status']}: {run['error']}")
    metrics = services.runs.latest_metrics(run["id"])
    return {
        "executor": executor,
        "wall_s": time.perf_counter() - started,
        "first_progress_s": first[0] if first else float("nan"),
        "train_s": metrics["train_seconds"],
        "accuracy": metrics["accuracy"],
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from appliance.datasets.ad_text import generate
    from appliance.services import Services
    from appliance.testing.ray_head import ray_head

    root = Path(tempfile.mkdtemp(prefix="bench-executors-"))
    results: list[dict[str, Any]] = []
    try:
        ads = generate(root / "ads", count=args.ads, seed=0).path
        with Services.open(home=root / "home") as services, ray_head(num_cpus=2) as address:
            services.workspaces.create("bench")
            services.datasets.add("bench", "ads", ads)
            for _ in range(args.rounds):
                for executor in ("local", "ray"):
                    row = one_run(services, executor, address if executor == "ray" else None,
                                  args.epochs)  # fmt: skip
                    print(json.dumps(row), flush=True)
                    results.append(row)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    median = {
        executor: {
            key: statistics.median(r[key] for r in results if r["executor"] == executor)
            for key in ("wall_s", "first_progress_s", "train_s", "accuracy")
        }
        for executor in ("local", "ray")
    }
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"python {platform.python_version()}; text-classifier, {args.ads} ads, "
          f"{args.epochs} epochs, threads 1; median of {args.rounds} runs each")  # fmt: skip
    print("| executor | wall s | first progress s | training s | accuracy | wall / local |")
    print("| --- | --- | --- | --- | --- | --- |")
    for executor, m in median.items():
        ratio = m["wall_s"] / median["local"]["wall_s"]
        print(f"| {executor} | {m['wall_s']:.1f} | {m['first_progress_s']:.1f} | "
              f"{m['train_s']:.1f} | {m['accuracy']:.3f} | {ratio:.2f}x |")  # fmt: skip


if __name__ == "__main__":
    main()
