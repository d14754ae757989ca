"""Time to the terminal UI's first frame: a fresh Python process imports the app, opens the
registry of a home and renders the workspaces screen (headless, 80×24), as `appliance up
--no-server` would. Torch must not be loaded by then.

Usage: python scripts/bench_tui.py [--home HOME] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

PROBE = r"""
import asyncio, json, sys, time
started = time.perf_counter()
from appliance.services import Services
from tui.app import ApplianceApp

async def main():
    with Services.open(home=sys.argv[1]) as services:
        app = ApplianceApp(services)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            await app.workers.wait_for_complete()
            await pilot.pause()
            first = time.perf_counter() - started
            table = app.screen.query_one("DataTable")
            print(json.dumps({"seconds": first, "rows": table.row_count,
                              "torch": "torch" in sys.modules}))

asyncio.run(main())
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="A home to open (default: a new one).")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = args.home or Path(tmp) / "home"
        if args.home is None:
            from appliance.services import Services

            with Services.open(home=home) as services:
                services.workspaces.create("ads")
        results = []
        for _ in range(args.runs):
            out = subprocess.run(
                [sys.executable, "-c", PROBE, str(home)],
                capture_output=True, text=True, check=True, env={**os.environ},
            )  # fmt: skip
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    seconds = [r["seconds"] for r in results]
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    print(f"Machine: {machine}, Python {platform.python_version()}; home {home}\n")
    print("| measurement | result |\n| --- | --- |")
    print(f"| first frame, median of {len(seconds)} | {statistics.median(seconds):.2f} s |")
    print(f"| first frame, slowest | {max(seconds):.2f} s |")
    print(f"| workspaces listed | {results[-1]['rows']} |")
    print(f"| torch loaded at first frame | {any(r['torch'] for r in results)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
