"""Benchmark the registry's Python client against MLflow's tracking client on SQLite: metric
logging, run creation and run listing. Prints a markdown table; see docs/benchmarks.md."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

INSTALL_HINT = (
    "install it in a separate venv: python3 -m venv /tmp/bench-venv && "
    "/tmp/bench-venv/bin/pip install mlflow-skinny sqlalchemy alembic, "
    "then pass --mlflow-python /tmp/bench-venv/bin/python"
)


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median_ms(fn: Callable[[], Any], repeat: int) -> tuple[int, float]:
    """(rows returned, median wall time in ms) of `repeat` calls of `fn`."""
    rows, times = 0, []
    for _ in range(repeat):
        start = time.perf_counter()
        rows = len(fn())
        times.append((time.perf_counter() - start) * 1000)
    return rows, statistics.median(times)


def bench_ours(args: argparse.Namespace, home: Path) -> dict[str, Any]:
    import appliance

    client = appliance.connect(home=str(home))
    try:
        ws = client.workspace("bench")
        run = ws.start_run(recipe="bench", params={"lr": 0.1})
        n = args.metrics

        def log_metrics() -> None:
            for i in range(n):
                run.log_metric("loss", 1 / (i + 1), step=i)

        def create_and_end() -> None:
            for _ in range(args.runs):
                ws.start_run(recipe="bench").end()

        metric_s = timed(log_metrics)
        run.end()
        runs_s = timed(create_and_end)
        list_small = median_ms(lambda: client.services.runs.list("bench"), args.repeat)
        for _ in range(args.list_runs - list_small[0]):
            client.services.runs.create("bench", recipe="bench", params={"lr": 0.1})
        list_big = median_ms(lambda: client.services.runs.list("bench"), args.repeat)
    finally:
        client.close()
    return {
        "metrics": n,
        "metric_s": metric_s,
        "runs": args.runs,
        "runs_s": runs_s,
        "list_small": list_small,
        "list_big": list_big,
    }


def bench_durability(commits: int, home: Path) -> str:
    """The cost of a durable write (synchronous=FULL: the WAL fsynced at COMMIT, what feedback,
    deployments and events use) against a non-durable one (NORMAL: metrics, captures), as one
    event row per transaction, alternating blocks so both see the same disk."""
    from appliance.registry import Registry
    from appliance.registry.database import new_id, utcnow

    times: dict[bool, list[float]] = {True: [], False: []}
    with Registry(home / "registry.db") as registry:
        ws = new_id()
        registry.write(
            lambda db: db.table("workspaces").insert(
                {"id": ws, "name": "bench", "description": "", "created_at": utcnow()}
            )
        )
        for block in range(10):
            for durable in (block % 2 == 0, block % 2 == 1):
                for _ in range(commits // 10):
                    row = {"workspace_id": ws, "kind": "bench", "subject": "s",
                           "detail": "{}", "created_at": utcnow()}  # fmt: skip
                    start = time.perf_counter()
                    registry.write(lambda db, r=row: db.table("events").insert(r), durable)
                    times[durable].append(time.perf_counter() - start)
    full, normal = (statistics.median(times[d]) * 1e6 for d in (True, False))
    return (
        "| write (one event row, its own transaction) | median µs |\n| --- | ---: |\n"
        f"| durable (synchronous=FULL) | {full:.0f} |\n"
        f"| not durable (synchronous=NORMAL) | {normal:.0f} |\n"
        f"| ratio | {full / normal:.1f}× |\n\n"
        f"{commits} commits each, `{os.uname().sysname}` on {platform.machine()}, "
        f"on the disk of {home.parent}"
    )


def bench_mlflow(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    import mlflow
    import sqlalchemy
    from mlflow.tracking import MlflowClient

    folder.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    eid = client.create_experiment("bench", artifact_location=(folder / "artifacts").as_uri())
    run_id = client.create_run(eid).info.run_id
    client.log_param(run_id, "lr", 0.1)
    n = args.mlflow_metrics
    metric_s = timed(
        lambda: [client.log_metric(run_id, "loss", 1 / (i + 1), step=i) for i in range(n)]
    )
    client.set_terminated(run_id)

    def create_and_end() -> None:
        for _ in range(args.runs):
            client.set_terminated(client.create_run(eid).info.run_id)

    runs_s = timed(create_and_end)
    search = median_ms(lambda: client.search_runs([eid], max_results=50_000), args.repeat)
    return {
        "metrics": n,
        "metric_s": metric_s,
        "runs": args.runs,
        "runs_s": runs_s,
        "list_small": search,
        "version": mlflow.__version__,
        "sqlalchemy": sqlalchemy.__version__,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }


def run_mlflow_worker(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Run the MLflow half under --mlflow-python, which may be another venv; JSON comes back."""
    check = [args.mlflow_python, "-c", "import mlflow, sqlalchemy, alembic"]
    if subprocess.run(check, capture_output=True).returncode != 0:
        print(f"mlflow is not importable by {args.mlflow_python}; {INSTALL_HINT}", file=sys.stderr)
        sys.exit(2)
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    cmd = [
        args.mlflow_python,
        __file__,
        "--worker-dir",
        str(folder),
        "--mlflow-metrics",
        str(args.mlflow_metrics),
        "--runs",
        str(args.runs),
        "--repeat",
        str(args.repeat),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        sys.exit(f"the MLflow benchmark failed (exit {done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def machine(ml: dict[str, Any]) -> str:
    cpuinfo = Path("/proc/cpuinfo")
    text = cpuinfo.read_text() if cpuinfo.exists() else ""
    models = [line.split(":", 1)[1].strip() for line in text.splitlines() if "model name" in line]
    cpu = models[0] if models else platform.processor() or "unknown CPU"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())

    def both(name: str, ours: str, theirs: str) -> str:
        return f"{name} {ours}" + ("" if ours == theirs else f" (MLflow side: {theirs})")

    return (
        f"{cpu}, {cores} cores usable, "
        f"{both('Python', platform.python_version(), ml['python'])}, "
        f"{both('SQLite', sqlite3.sqlite_version, ml['sqlite'])}, MLflow {ml['version']} "
        f"(SQLAlchemy {ml['sqlalchemy']}); load average 1/5/15 min at the end: {load}"
    )


def table(ours: dict[str, Any], ml: dict[str, Any], list_runs: int, repeat: int) -> str:
    def rate(side: dict[str, Any], count: str, seconds: str, unit: str) -> tuple[float, str]:
        per_s = side[count] / side[seconds]
        us = side[seconds] / side[count] * 1e6
        return per_s, f"{per_s:,.0f} {unit}/s ({us:,.0f} µs each; {side[count]:,} {unit})"

    o_m, ours_m = rate(ours, "metrics", "metric_s", "calls")
    m_m, ml_m = rate(ml, "metrics", "metric_s", "calls")
    o_r, ours_r = rate(ours, "runs", "runs_s", "runs")
    m_r, ml_r = rate(ml, "runs", "runs_s", "runs")
    (o_n, o_ms), (m_n, m_ms) = ours["list_small"], ml["list_small"]
    big_n, big_ms = ours["list_big"]
    ok = {True: "met", False: "**missed**"}
    rows = [
        "| Measurement | appliance | MLflow (SQLite store) | speed, ours ÷ MLflow | target |",
        "|---|---|---|---|---|",
        f"| `log_metric`, one call at a time, one run | {ours_m} | {ml_m} | {o_m / m_m:,.0f}× "
        f"| ≥ 20×: {ok[o_m / m_m >= 20]} |",
        f"| create + end a run | {ours_r} | {ml_r} | {o_r / m_r:,.0f}× | — |",
        f"| list all runs: `runs.list` vs `search_runs`, {o_n:,} vs {m_n:,} runs "
        f"(median of {repeat}) | {o_ms:,.1f} ms | {m_ms:,.1f} ms | {m_ms / o_ms:,.1f}× | — |",
        f"| list all runs: `runs.list`, {big_n:,} runs (median of {repeat}) | {big_ms:,.1f} ms "
        f"| not measured | — | < 100 ms: {ok[big_ms < 100]} |",
    ]
    if big_n != list_runs:
        rows.append(f"\nThe workspace held {big_n:,} runs, not the {list_runs:,} asked for.")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--metrics", type=int, default=10_000, help="our log_metric calls")
    parser.add_argument(
        "--mlflow-metrics",
        type=int,
        default=2_000,
        help="MLflow log_metric calls (~15 ms each; 10,000 take minutes)",
    )
    parser.add_argument("--runs", type=int, default=1_000, help="runs created and ended per side")
    parser.add_argument(
        "--list-runs",
        type=int,
        default=10_000,
        help="runs in our workspace when timing the big listing",
    )
    parser.add_argument("--repeat", type=int, default=5, help="listings timed; median reported")
    parser.add_argument(
        "--mlflow-python",
        default=os.environ.get("BENCH_MLFLOW_PYTHON", sys.executable),
        help="python that has mlflow, e.g. of a separate venv; the MLflow half runs in it "
        "(default: $BENCH_MLFLOW_PYTHON, else this python)",
    )
    parser.add_argument(
        "--durability",
        type=int,
        metavar="N",
        help="only time N durable against N non-durable registry commits (no MLflow needed)",
    )
    parser.add_argument("--markdown-out", type=Path, help="also write the results here")
    parser.add_argument("--worker-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker_dir is not None:  # the MLflow half, in --mlflow-python
        print(json.dumps(bench_mlflow(args, args.worker_dir)))
        return
    try:
        import appliance  # noqa: F401
    except ImportError:
        print("appliance is not importable; run this with the project's venv", file=sys.stderr)
        sys.exit(2)

    workdir = Path(tempfile.mkdtemp(prefix="bench-registry-"))
    if args.durability:
        try:
            print(bench_durability(args.durability, workdir))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        return
    try:
        ml = run_mlflow_worker(args, workdir / "mlflow")
        ours = bench_ours(args, workdir / "appliance-home")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    out = f"Machine: {machine(ml)}\n\n{table(ours, ml, args.list_runs, args.repeat)}\n"
    print(out)
    if args.markdown_out:
        args.markdown_out.write_text(out)


if __name__ == "__main__":
    main()
