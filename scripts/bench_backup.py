"""What the registry's checks and a backup cost on a registry of realistic size: a home whose
registry holds ROWS captured predictions (features and output JSON, a float16 embedding, a
thumbnail for one in ten, as capture stores them). Measures `PRAGMA quick_check` and
`integrity_check` (best of 3, the file in the page cache), the check an ordinary open runs,
and one backup and restore of the home. Prints a markdown table; see docs/backup.md."""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from appliance.backup import integrity
from appliance.backup.create import create_backup
from appliance.backup.restore import restore_backup
from appliance.registry.database import connect
from appliance.services import Services


def fill(home: Path, rows: int, dims: int, seed: int) -> None:
    with Services.open(home=home) as services:
        workspace = services.workspaces.create("ads")["id"]
    rng = random.Random(seed)
    conn = connect(home / "registry.db", 15_000)
    conn.execute("BEGIN")
    for i in range(rows):
        features = {k: rng.random() for k in ("width", "height", "brightness", "contrast")}
        conn.execute(
            "INSERT INTO predictions (id, workspace_id, endpoint, model_version_id, created_at,"
            " latency_ms, queue_ms, inference_ms, batch_size, keywords, description, confidence,"
            " warnings, features, output, embedding, thumbnail)"
            " VALUES (?, ?, 'captions', 'v1', ?, 12.5, 0.4, 11.0, 1, '', ?, ?, '[]', ?, ?, ?, ?)",
            (
                f"{i:012x}", workspace, f"2026-01-01T00:00:{i % 60:02d}.{i:06d}Z",
                "red striped mug on a white background", rng.random(), json.dumps(features),
                json.dumps({"description": "red striped mug on a white background"}),
                rng.randbytes(2 * dims), rng.randbytes(3000) if rng.random() < 0.1 else None,
            ),
        )  # fmt: skip
    conn.execute("COMMIT")
    conn.close()


def best_ms(fn: Callable[[], Any], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--dims", type=int, default=384, help="embedding width (float16)")
    args = parser.parse_args()
    print("| captured predictions | registry | quick_check | integrity_check | check at open |"
          " backup (archive) | restore |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for rows in args.rows:
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp) / "home"
            fill(home, rows, args.dims, seed=rows)
            registry = home / "registry.db"
            size = integrity.registry_bytes(registry)
            quick = best_ms(partial(integrity.check_registry, registry))
            full = best_ms(partial(integrity.check_registry, registry, full=True))
            at_open = best_ms(partial(integrity.check_at_open, registry))
            start = time.perf_counter()
            made = create_backup(home, Path(tmp) / "home.tar")
            backup_s = time.perf_counter() - start
            start = time.perf_counter()
            restore_backup(made.path, Path(tmp) / "restored")
            restore_s = time.perf_counter() - start
            opened = "skipped" if size > integrity.OPEN_CHECK_MAX_BYTES else f"{at_open:.1f} ms"
            print(
                f"| {rows:,} | {size / 1e6:.1f} MB | {quick:.1f} ms | {full:.1f} ms | {opened} |"
                f" {backup_s:.2f} s ({made.size / 1e6:.1f} MB) | {restore_s:.2f} s |"
            )
    print(f"\nPython {sys.version.split()[0]}, SQLite {__import__('sqlite3').sqlite_version}, "
          f"{os.cpu_count()} CPUs; check at open runs up to "
          f"{integrity.OPEN_CHECK_MAX_BYTES / 2**20:.0f} MiB")  # fmt: skip


if __name__ == "__main__":
    main()
