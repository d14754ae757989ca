"""Keyword model benchmark (issue 17): the captioner trained with seller keywords vs without.

The keyword model and a baseline trained on the same photos without keywords are both scored on
the keyword data's held-out rows.

In a temporary home (never the user's), generates the photos twice with the same seed (once
with a share of rows given keywords the photo cannot show, once with none: the old captioner's
data), adds each as a dataset, trains the captioner recipe on each through the real pipeline (a
child process, metrics into the registry), and prints the registered keyword version's held-out
metrics beside the baseline's, the baseline evaluated on the keyword data's held-out rows.

    python scripts/bench_keywords.py [--count 2000] [--seed 0] [--epochs N] [--skip-baseline]
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from appliance.datasets.synthetic import generate
from appliance.models.evaluation import evaluate_version
from appliance.recipes.split import split_rows
from appliance.runs.launcher import start_run
from appliance.services import Services

WORKSPACE = "bench"
ADHERENCE_BAR = 0.9
EXACT_BAR = 0.85


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=2000, help="photos generated (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    parser.add_argument(
        "--keyword-fraction", type=float, default=0.5,
        help="share of rows given seller keywords (default 0.5)",
    )  # fmt: skip
    parser.add_argument(
        "--low-light-fraction", type=float, default=0.1,
        help="share of low-light photos (default 0.1)",
    )  # fmt: skip
    parser.add_argument("--epochs", type=int, help="train param; the recipe's default if unset")
    parser.add_argument(
        "--skip-baseline", action="store_true",
        help="train only the keyword model (no model trained without keywords)",
    )  # fmt: skip
    args = parser.parse_args()
    params = {} if args.epochs is None else {"epochs": str(args.epochs)}

    with (
        tempfile.TemporaryDirectory(prefix="bench-keywords-") as tmp,
        Services.open(home=Path(tmp) / "home") as services,
    ):
        services.workspaces.create(WORKSPACE)
        data, keyword_model, wall = train(services, Path(tmp), "keywords", args, params)
        folder = services.datasets.materialize(data)
        _, held = split_rows(services.datasets.rows(data))
        with_kw = [row for row in held if row.get("keywords")]
        without_kw = [row for row in held if not row.get("keywords")]
        m = keyword_model["metrics"]
        plain_rows = evaluate(services, keyword_model, folder, without_kw)
        lines = [
            row(
                f"keyword model (keyword fraction {args.keyword_fraction:g})",
                m.get("exact_match"), m.get("exact_match_keywords"),
                m.get("keyword_adherence"), plain_rows.get("exact_match"),
                m.get("train_seconds"), wall,
            )
        ]  # fmt: skip
        if not args.skip_baseline:
            _, baseline, base_wall = train(services, Path(tmp), "plain", args, params, 0.0)
            on_kw = evaluate(services, baseline, folder, with_kw)
            on_plain = evaluate(services, baseline, folder, without_kw)
            overall = weighted((on_kw, len(with_kw)), (on_plain, len(without_kw)))
            lines.append(
                row(
                    "baseline (same photos, no keywords)",
                    overall.get("exact_match"), on_kw.get("exact_match"),
                    on_kw.get("keyword_adherence"), on_plain.get("exact_match"),
                    baseline["metrics"].get("train_seconds"), base_wall,
                )
            )  # fmt: skip

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"Machine: {machine()}; load average at the end {load}")
    print(f"Command: {command()}")
    print(
        f"Data: {args.count} photos, seed {args.seed}, keyword fraction {args.keyword_fraction:g},"
        f" low-light fraction {args.low_light_fraction:g}; held out {len(held)} rows,"
        f" {len(with_kw)} with keywords, {len(without_kw)} without;"
        f" params: {params or 'recipe defaults'}"
    )
    print()
    print(
        "| model | exact match, all held out | exact match, rows with keywords "
        "| keyword adherence | exact match, rows without keywords | train s | wall s |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    print("\n".join(lines))
    print()
    print(
        "The keyword model's first three figures are its registered held-out metrics; the "
        "rows-without-keywords column and the baseline's row are evaluate_version on the "
        "keyword data's held-out rows (the baseline is given the keywords as prompts too)."
    )
    adherence, exact = m.get("keyword_adherence"), m.get("exact_match_keywords")
    print(
        f"Bars (issue 17): keyword adherence ≥ {ADHERENCE_BAR}: {verdict(adherence, ADHERENCE_BAR)}"
        f"; exact match on rows with keywords ≥ {EXACT_BAR}: {verdict(exact, EXACT_BAR)}"
    )
    return 0


def train(
    services: Services,
    tmp: Path,
    name: str,
    args: argparse.Namespace,
    params: dict[str, str],
    keyword_fraction: float | None = None,
) -> tuple[dict[str, Any], dict[str, Any], float]:
    """Generate, add as dataset `name`, train model `captioner-NAME`: (dataset version, model
    version, wall seconds from start to registered)."""
    fraction = args.keyword_fraction if keyword_fraction is None else keyword_fraction
    photos = generate(
        tmp / name, count=args.count, seed=args.seed,
        low_light_fraction=args.low_light_fraction, keyword_fraction=fraction,
    )  # fmt: skip
    data = services.datasets.add(WORKSPACE, name, photos.path).version
    started = time.perf_counter()
    launch = start_run(services, WORKSPACE, "captioner", name, params, f"captioner-{name}")
    run = launch.wait(interval=2.0)
    if run["status"] != "succeeded":
        raise SystemExit(f"the {name} run {run['status']}: {run['error']}")
    version = services.models.by_run(run["id"])
    if version is None:
        raise SystemExit(f"the {name} run succeeded but registered no version")
    return data, version, time.perf_counter() - started


def evaluate(
    services: Services, version: dict[str, Any], folder: Path, rows: list[dict[str, Any]]
) -> dict[str, float]:
    return evaluate_version(services, WORKSPACE, version, folder, rows) if rows else {}


def weighted(*parts: tuple[dict[str, float], int]) -> dict[str, float]:
    """Exact match over the union of disjoint row sets, from each set's share and size."""
    total = sum(n for _, n in parts)
    return {"exact_match": sum(m["exact_match"] * n for m, n in parts if n) / total}


def row(name: str, *figures: float | None) -> str:
    *scores, train_s, wall_s = figures
    shown = [f"{x:.3f}" if x is not None else "not measured" for x in scores]
    shown += [f"{x:.0f}" if x is not None else "not recorded" for x in (train_s, wall_s)]
    return f"| {name} | " + " | ".join(shown) + " |"


def verdict(value: float | None, bar: float) -> str:
    if value is None:
        return "not measured"
    return f"{value:.3f}, {'met' if value >= bar else 'MISSED'}"


def machine() -> str:
    import torch

    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown CPU",
    ) if Path("/proc/cpuinfo").exists() else platform.processor()  # fmt: skip
    blas = os.environ.get("OPENBLAS_NUM_THREADS", "unset")
    return (
        f"{platform.machine()} {model}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, torch {torch.__version__}, "
        f"OPENBLAS_NUM_THREADS={blas}, no GPU used (device cpu)"
    )


def command() -> str:
    env = [f"{k}={os.environ[k]}" for k in ("OPENBLAS_NUM_THREADS",) if k in os.environ]
    return " ".join([*env, ".venv/bin/python", shlex.join([sys.argv[0], *sys.argv[1:]])])


if __name__ == "__main__":
    sys.exit(main())
