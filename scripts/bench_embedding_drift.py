"""Embedding drift benchmark: false alarms and detections of each two-sample test, and its speed.

For each method (MMD with permutations, domain classifier) and window size, R seeded windows are
drawn from `same` (fresh rows of the training distribution: any flag is a false alarm) and from a
stream where rows of `shifted` (an unseen category) make up --shift-share of the window (any flag
is a detection); each is tested against `reference`. The last table is the mean seconds of one
test of 500 live rows against 1000 reference rows.

Usage: python scripts/bench_embedding_drift.py [--npz FILE] [--windows 20] [--shift-share 0.3]
FILE holds arrays `reference` (n, d), `same` (m, d) and `shifted` (k, d). Without it a synthetic
Gaussian-mixture stand-in is used, and the output says so.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Sequence

import numpy as np

from appliance.monitoring.embeddings import METHODS, MIN_LIVE


def synthetic(dims: int = 256, clusters: int = 6, seed: int = 0) -> dict[str, np.ndarray]:
    """A Gaussian mixture with a decaying spectrum and a shared offset; `shifted` is a new cluster.

    The same kind of stand-in as tests/test_embedding_drift.py, wider and a little harder."""
    rng = np.random.default_rng(seed)
    scales = 1.0 / np.sqrt(1 + np.arange(dims))
    offset = rng.standard_normal(dims) * 0.5
    centers = rng.standard_normal((clusters + 1, dims)) * scales * 0.7

    def draw(n: int, which: Sequence[int]) -> np.ndarray:
        rows = centers[rng.choice(which, n)] + rng.standard_normal((n, dims)) * scales
        return (offset + rows).astype(np.float32)

    seen = range(clusters)
    return {
        "reference": draw(1000, seen),
        "same": draw(5000, seen),
        "shifted": draw(2000, [clusters]),
    }


def pick(rng: np.random.Generator, rows: np.ndarray, n: int) -> np.ndarray:
    return rows[rng.choice(len(rows), n, replace=n > len(rows))]


def window(
    rng: np.random.Generator, data: dict[str, np.ndarray], n: int, share: float
) -> np.ndarray:
    new = round(n * share)
    return np.vstack([pick(rng, data["same"], n - new), pick(rng, data["shifted"], new)])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--npz", help="arrays reference, same, shifted (default: synthetic)")
    parser.add_argument("--windows", type=int, default=20, help="seeded windows per cell")
    parser.add_argument("--shift-share", type=float, default=0.3)
    parser.add_argument("--sizes", default="25,50,100,200", help="window sizes, comma-separated")
    parser.add_argument("--alpha", type=float, default=0.01)
    parser.add_argument("--timing-runs", type=int, default=5)
    args = parser.parse_args(argv)
    if args.npz:
        with np.load(args.npz) as npz:
            data = {key: np.asarray(npz[key], dtype=np.float32) for key in
                    ("reference", "same", "shifted")}  # fmt: skip
        source = f"`{args.npz}`"
    else:
        data = synthetic()
        source = "a synthetic stand-in (256-dim Gaussian mixture, shifted = an unseen cluster)"
    sizes = [int(s) for s in args.sizes.split(",")]
    shapes = ", ".join(f"{k} {v.shape[0]}×{v.shape[1]}" for k, v in data.items())
    print(f"Embedding drift on {source}: {shapes}")
    print(f"{args.windows} windows a cell, alpha {args.alpha}, shifted share {args.shift_share}; "
          f"numpy {np.__version__}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs\n")  # fmt: skip

    print("| method | live rows | false alarms | detected | median p (shifted) |")
    print("|---|---:|---:|---:|---:|")
    for name, test in METHODS.items():
        for size in sizes:
            flags = {"same": 0, "shifted": 0}
            shifted_p = []
            for r in range(args.windows):
                for kind, share in (("same", 0.0), ("shifted", args.shift_share)):
                    rng = np.random.default_rng([r, size, int(share * 1000)])
                    result = test(data["reference"], window(rng, data, size, share), seed=r,
                                  alpha=args.alpha)  # fmt: skip
                    flags[kind] += result.drifted
                    if kind == "shifted":
                        shifted_p.append(result.p_value)
            note = " (below MIN_LIVE)" if size < MIN_LIVE else ""
            print(f"| {name} | {size}{note} | {flags['same']}/{args.windows} | "
                  f"{flags['shifted']}/{args.windows} | {np.median(shifted_p):.4f} |")  # fmt: skip

    print("\n| method | s per test, 500 live × 1000 reference |")
    print("|---|---:|")
    rng = np.random.default_rng(99)
    reference, live = pick(rng, data["reference"], 1000), pick(rng, data["same"], 500)
    for name, test in METHODS.items():
        test(reference, live)  # warm up
        start = time.perf_counter()
        for r in range(args.timing_runs):
            test(reference, live, seed=r)
        print(f"| {name} | {(time.perf_counter() - start) / args.timing_runs:.3f} |")


if __name__ == "__main__":
    main()
