"""Capture benchmark: sustain a target rate of predictions on a trivial model through the real
serving path (Serving.predict → batcher → Monitor.observe → capture queue → batched writes) and
check that every prediction was either written or counted as dropped.

Usage: python scripts/bench_capture.py [--rate 5000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from appliance.monitoring.monitor import Monitor
from appliance.services import Services
from appliance.serving.options import DeployOptions
from appliance.serving.pool import ModelPool
from appliance.serving.service import Serving
from appliance.tasks import PredictInput, Prediction, get_task

FEATURES = {"width": 64.0, "height": 64.0, "brightness": 120.0, "brightness_p99": 200.0,
            "contrast": 40.0, "sharpness": 30.0}  # fmt: skip


class Trivial:
    """A model that costs nothing, so the capture path is all that is measured."""

    ready = True
    device = "cpu"
    task = get_task("image-to-text")

    def load(self) -> None:
        pass

    def predict(self, inputs: Sequence[PredictInput]) -> list[Prediction]:
        return [Prediction({"description": "red mug"}, 0.99) for _ in inputs]

    def unload(self) -> None:
        pass


async def drive(serving: Serving, rate: int, seconds: float) -> tuple[int, float]:
    image = Image.new("RGB", (64, 64), "white")
    item = PredictInput({"image": image, "keywords": None}, FEATURES)
    tick = 0.01
    per_tick = max(1, round(rate * tick))
    sent = 0
    start = time.perf_counter()
    next_tick = start
    while time.perf_counter() - start < seconds:
        await asyncio.gather(*(serving.predict("bench", [item]) for _ in range(per_tick)))
        sent += per_tick
        next_tick += tick
        delay = next_tick - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
    return sent, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=5000, help="Predictions per second to offer.")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--markdown-out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Services.open(home=Path(tmp)) as services:
        services.workspaces.create("bench")
        monitor = Monitor(services)
        serving = Serving(services, monitor)
        serving.pool = ModelPool(lambda version, options: Trivial(), lambda runtime: None)
        version = {"id": "trivial", "name": "trivial", "version": 1}
        options = DeployOptions(max_batch_size=64, max_batch_wait_ms=1)
        serving.pool.deploy("bench", "bench", version, options)
        sent, elapsed = asyncio.run(drive(serving, args.rate, args.seconds))
        flush_started = time.perf_counter()
        monitor.capture.flush(timeout=120)
        flush_s = time.perf_counter() - flush_started
        rows = services.registry.query("SELECT COUNT(*) AS n FROM predictions")[0]["n"]
        capture = monitor.capture
        serving.close()
        monitor.close()
    accounted = rows + capture.dropped
    rows_md = [
        ("offered", f"{args.rate:,}/s for {args.seconds:g} s"),
        ("predictions answered", f"{sent:,} in {elapsed:.2f} s = {sent / elapsed:,.0f}/s"),
        ("rows written", f"{rows:,}"),
        ("counted as dropped", f"{capture.dropped:,}"),
        ("unaccounted (sent − written − dropped)", f"{sent - accounted:,}"),
        ("capture backlog after the load", f"flushed in {flush_s:.2f} s"),
    ]
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    table = "\n".join(
        ["| measurement | result |", "| --- | --- |", *(f"| {a} | {b} |" for a, b in rows_md)]
    )
    text = f"Machine: {machine}, Python {platform.python_version()}\n\n{table}\n"
    print(text)
    if args.markdown_out:
        args.markdown_out.write_text(text)
    return 0 if sent == accounted else 1


if __name__ == "__main__":
    sys.exit(main())
