"""Serving benchmark: a model's offline throughput (batch 1 and 32, the limit) against the same
model behind `appliance serve` at concurrency 1 and 32, and optionally behind `mlflow models serve`.
`--task text-classification` measures a text-classifier version on generated ads (JSON bodies).

Load comes from a separate process on loopback, bounded in requests and seconds: wrk (C, one
event-loop thread) when it is installed (`apt-get install wrk`), else a Python client. Usage:
  python scripts/bench_serving.py --model-dir FOLDER [--recipe captioner] [--mlflow-python PY]
  [--instances N --instance-kind thread|process]  (the deployment's model instances)
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


@functools.cache  # the same photos for every measurement, generated once per process
def images(count: int = 64) -> list[bytes]:
    from appliance.datasets.synthetic import generate

    with tempfile.TemporaryDirectory() as tmp:
        folder = generate(Path(tmp) / "imgs", count=count, seed=11, low_light_fraction=0.2).path
        return [p.read_bytes() for p in sorted(folder.glob("*.png"))]


@functools.cache
def ads(count: int = 64) -> list[bytes]:
    """Generated ads as predict bodies: {"title": ..., "text": ...}."""
    from appliance.datasets.ad_text import generate

    with tempfile.TemporaryDirectory() as tmp:
        folder = generate(Path(tmp) / "ads", count=count, seed=11).path
        rows = [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]
    return [json.dumps({"title": r["title"], "text": r["text"]}).encode() for r in rows]


def payloads(kind: str) -> list[bytes]:
    return ads() if kind == "appliance-text" else images()


def offline(
    model_dir: Path, recipe: str, quantization: str, data: list[bytes], seconds: float,
    kind: str = "appliance",
) -> dict[str, float]:  # fmt: skip
    """The limit: the recipe's predictor called directly, no HTTP, no batcher."""
    from PIL import Image

    from appliance.recipes.catalog import builtin_recipes, load_module
    from appliance.recipes.spec import read_recipe

    spec = builtin_recipes().get(recipe) or read_recipe(Path(recipe))
    predictor = load_module(spec).load(model_dir, device="cpu", quantization=quantization)
    decoded: list[Any]
    if kind == "appliance-text":  # what the task hands the predictor: "title\ntext"
        decoded = [f"{a['title']}\n{a['text']}" for a in map(json.loads, data)]
    else:
        decoded = [Image.open(io.BytesIO(b)).convert("RGB") for b in data]
    predictor.predict(decoded[:2])  # warm-up
    out: dict[str, float] = {}
    for batch in (1, 32):
        done, latencies, start = 0, [], time.perf_counter()
        while time.perf_counter() - start < seconds:
            chunk = [decoded[(done + i) % len(decoded)] for i in range(batch)]
            t = time.perf_counter()
            predictor.predict(chunk)
            latencies.append((time.perf_counter() - t) * 1000)
            done += batch
        out[f"b{batch}_ips"] = done / (time.perf_counter() - start)
        out[f"b{batch}_ms"] = statistics.median(latencies)
    return out


def _load(
    url: str, kind: str, data: list[bytes], concurrency: int, requests: int, seconds: float
) -> dict[str, Any]:
    """Closed-loop load: `concurrency` keep-alive connections, each sending its next request as
    soon as the last is answered. Plain http.client keeps the client's own overhead small."""
    import http.client
    import threading
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    bodies = _bodies(kind, data)
    latencies: list[float] = []
    errors = [0]
    counter = iter(range(requests))
    lock = threading.Lock()
    start = time.perf_counter()
    deadline = start + seconds

    def worker() -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        for _ in range(3):  # warm the connection and the model's path
            body, ctype = bodies[0]
            conn.request("POST", parts.path, body=body, headers={"content-type": ctype})
            conn.getresponse().read()
        while time.perf_counter() < deadline:
            with lock:
                n = next(counter, None)
            if n is None:
                break
            body, ctype = bodies[n % len(bodies)]
            t = time.perf_counter()
            conn.request("POST", parts.path, body=body, headers={"content-type": ctype})
            response = conn.getresponse()
            response.read()
            with lock:
                if response.status == 200:
                    latencies.append((time.perf_counter() - t) * 1000)
                else:
                    errors[0] += 1
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    start = time.perf_counter()
    deadline = start + seconds
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    return {
        "ips": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) if latencies else None,
        "p95_ms": statistics.quantiles(latencies, n=20)[-1] if len(latencies) > 20 else None,
        "ok": len(latencies),
        "errors": errors[0],
        "client": "python",
    }


WRK_SCRIPT = """
local paths = {PATHS}
local bodies, sent = {}, 0
function init(args)
  for i, path in ipairs(paths) do
    local f = io.open(path, "rb"); bodies[i] = f:read("*all"); f:close()
  end
end
function request()
  sent = sent + 1
  return wrk.format("POST", nil, {["Content-Type"] = "CTYPE"}, bodies[sent % #bodies + 1])
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "status_errors": %d, "socket_errors": %d, '
    .. '"p50_us": %d, "p95_us": %d}\\n', summary.requests, summary.duration, e.status,
    e.connect + e.read + e.write + e.timeout, latency:percentile(50), latency:percentile(95)))
end
"""


def _load_wrk(
    url: str, kind: str, data: list[bytes], concurrency: int, seconds: float
) -> dict[str, Any]:
    """The same closed loop from wrk: `concurrency` keep-alive connections on one thread, the
    bodies taken in turn, for `seconds`. Bounded by time only: wrk always runs its full
    duration, so a request limit reached earlier would cap the rate at requests / seconds
    (the c=32 rows of 2026-11-29 read exactly 4000 / 10 s = 400 img/s for that reason)."""
    bodies = _bodies(kind, data)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, (body, _) in enumerate(bodies):
            path = Path(tmp) / f"{i}.body"
            path.write_bytes(body)
            paths.append(f'"{path}"')
        script = Path(tmp) / "load.lua"
        script.write_text(
            WRK_SCRIPT.replace("PATHS", ", ".join(paths)).replace("CTYPE", bodies[0][1])
        )
        command = ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s"]
        command += ["--timeout", "60s", "-s", str(script), url]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    errors = result["status_errors"] + result["socket_errors"]
    ok = result["requests"] - result["status_errors"]
    return {
        "ips": ok / (result["duration_us"] / 1e6),
        "p50_ms": result["p50_us"] / 1000,
        "p95_ms": result["p95_us"] / 1000,
        "ok": ok,
        "errors": errors,
        "client": "wrk",
    }


def _bodies(kind: str, data: list[bytes]) -> list[tuple[bytes, str]]:
    import base64

    if kind == "appliance":
        return [(image, "image/png") for image in data]
    if kind == "appliance-text":
        return [(body, "application/json") for body in data]
    return [
        (
            json.dumps(
                {
                    "dataframe_split": {
                        "columns": ["image"],
                        "data": [[base64.b64encode(i).decode()]],
                    }
                }
            ).encode(),
            "application/json",
        )
        for i in data
    ]


def load_from_another_process(
    url: str, kind: str, concurrency: int, requests: int, seconds: float
) -> dict[str, Any]:
    if shutil.which("wrk"):
        return _load_wrk(url, kind, payloads(kind), concurrency, seconds)
    command = [sys.executable, __file__, "--load", url, "--kind", kind]
    command += ["--concurrency", str(concurrency), "--requests", str(requests)]
    command += ["--seconds", str(seconds)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def _served(result: dict[str, Any]) -> str:
    p95 = f", p95 {result['p95_ms']:.2f} ms" if result["p95_ms"] else ""
    return (
        f"{result['ips']:.1f} img/s, p50 {result['p50_ms']:.2f} ms{p95}, errors {result['errors']}"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, seconds: float = 120) -> None:
    import httpx

    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} never answered 200")


def appliance_server(
    model_dir: Path, recipe: str, quantization: str, home: Path, env_extra: dict[str, str],
    wait_ms: int = 25, instances: int = 1, instance_kind: str = "thread",
    deployed: str = "model@1",
) -> tuple[subprocess.Popen[bytes], str]:  # fmt: skip
    """`appliance serve` with `model@1` (or `deployed`) recorded as deployed before it starts,
    so the server loads it at start (the first state measured). `model@2` holds the same
    weights: a hot swap to it and a rollback from it change the model object, not the work."""
    from appliance.services import Services

    with Services.open(home=home) as services:
        _register(services, model_dir, recipe)
        services.deployments.record(
            "bench",
            "bench",
            services.models.get("bench", deployed),
            _options(quantization, wait_ms, instances, instance_kind),
        )
    port = free_port()
    env = {**os.environ, "APPLIANCE_HOME": str(home), "APPLIANCE_PORT": str(port), **env_extra}
    server = subprocess.Popen(
        [sys.executable, "-m", "appliance", "serve", "--log-level", "warning"], env=env
    )
    wait_http(f"http://127.0.0.1:{port}/v2/health/ready")
    return server, f"http://127.0.0.1:{port}/v1/endpoints/bench/predict"


def _register(services: Any, model_dir: Path, recipe: str) -> None:
    """The bench workspace with the model folder as model@1 and model@2 (once per home); a
    recipe folder is added as the workspace's recipe."""
    services.workspaces.ensure("bench")
    if Path(recipe).is_dir():  # a recipe folder rather than a built-in name
        recipe = services.recipes.add("bench", Path(recipe)).name
    if not services.models.list("bench"):
        for _ in range(2):
            services.models.register("bench", "model", model_dir, recipe=recipe)


def calibrated_version(args: argparse.Namespace, home: Path) -> str:
    """A third version of the same weights, calibrated as a run calibrates its version (its
    held-out rows as they are and shifted, the training rows as the reference embeddings) on
    a generated dataset of the task's kind: served, it applies the calibration and the
    distance to every batch, which model@1 and model@2 (registered by hand) do not."""
    from appliance.models.calibration import calibrate_version
    from appliance.services import Services

    with Services.open(home=home) as services, tempfile.TemporaryDirectory() as tmp:
        _register(services, args.model_dir, args.recipe)
        if args.kind == "appliance-text":
            from appliance.datasets.ad_text import generate as generate_ads

            folder = generate_ads(Path(tmp) / "ads", count=400, seed=5).path
        else:
            from appliance.datasets.synthetic import generate

            folder = generate(Path(tmp) / "photos", count=400, seed=5, low_light_fraction=0.1).path
        dataset = services.datasets.add("bench", "calibration", folder).version
        recipe = services.models.get("bench", "model@1").get("recipe")
        version = services.models.register("bench", "model", args.model_dir, recipe=recipe)
        ref = f"model@{version['version']}"
        trust = calibrate_version(services, "bench", ref, f"{dataset['name']}@{dataset['version']}")
    print(f"calibrated {ref}: kept {trust['kept']}", file=sys.stderr)
    return ref


def _options(quantization: str, wait_ms: int, instances: int = 1, kind: str = "thread") -> Any:
    from appliance.serving.options import DeployOptions

    return DeployOptions(
        quantization=quantization, device="cpu", max_batch_size=32, max_batch_wait_ms=wait_ms,
        instances=instances, instance_kind=kind,
    )  # fmt: skip


def _now() -> str:
    from appliance.registry import utcnow

    return utcnow()


def _mean_batch(url: str, home: Path, since: str) -> str:
    """The mean batch size of the predictions captured since `since` (the server flushes its
    capture for the monitoring read first)."""
    import sqlite3

    import httpx

    base = url.split("/v1/")[0]
    httpx.get(f"{base}/v1/workspaces/bench/monitoring/summary", timeout=60)
    with sqlite3.connect(home / "registry.db") as db:
        (mean,) = db.execute(
            "SELECT AVG(batch_size) FROM predictions WHERE created_at >= ?", (since,)
        ).fetchone()
    return f"{mean:.1f}" if mean is not None else "?"


def _redeploy(
    url: str, quantization: str, wait_ms: int, model: str = "model@1", instances: int = 1,
    instance_kind: str = "thread",
) -> None:  # fmt: skip
    """A hot swap into the running server, as `appliance deploy` does it."""
    import httpx

    base = url.split("/v1/")[0]
    body = {
        "workspace": "bench", "endpoint": "bench", "model": model,
        "quantization": quantization, "device": "cpu", "max_batch_size": 32,
        "max_batch_wait_ms": wait_ms, "instances": instances, "instance_kind": instance_kind,
    }  # fmt: skip
    httpx.post(f"{base}/v1/deployments", json=body, timeout=300).raise_for_status()


def _rollback(url: str) -> None:
    """Back to the version served before, as `appliance deploy rollback` does it."""
    import httpx

    base = url.split("/v1/")[0]
    body = {"workspace": "bench"}
    httpx.post(f"{base}/v1/deployments/bench/rollback", json=body, timeout=300).raise_for_status()


# The states a deployment reaches in a running server, measured in this order in each round.
STATES = (
    ("loaded at start", None),
    ("hot-swapped in (POST /v1/deployments)", "swap"),
    ("rolled back (POST /v1/deployments/bench/rollback)", "rollback"),
)


def serving_round(args: argparse.Namespace, home: Path) -> dict[str, dict[str, Any]]:
    """One fresh server: c=1 and c=32 in each state of STATES, in order."""
    server, url = appliance_server(
        args.model_dir, args.recipe, args.quantization, home, {}, args.max_batch_wait_ms,
        args.instances, args.instance_kind,
    )  # fmt: skip
    results: dict[str, dict[str, Any]] = {}
    try:
        for state, change in STATES:
            if change == "swap":
                _redeploy(
                    url, args.quantization, args.max_batch_wait_ms, "model@2", args.instances,
                    args.instance_kind,
                )  # fmt: skip
            elif change == "rollback":
                _rollback(url)
            c1 = load_from_another_process(url, args.kind, 1, args.requests, args.seconds)
            since = _now()
            c32 = load_from_another_process(url, args.kind, 32, args.requests, args.seconds)
            results[state] = {"c1": c1, "c32": c32, "batch": _mean_batch(url, home, since)}
        if args.compare_wait is not None:
            _redeploy(
                url, args.quantization, args.compare_wait, "model@1", args.instances,
                args.instance_kind,
            )  # fmt: skip
            since = _now()
            other = load_from_another_process(url, args.kind, 32, args.requests, args.seconds)
            results["compare"] = {"c32": other, "batch": _mean_batch(url, home, since)}
    finally:
        server.terminate()
        server.wait(30)
    return results


CAPTURE_STATES = (
    ("plain", "capture off, no calibration"),
    ("capture", "capture on, no calibration"),
    ("trust", "capture on, calibrated (distance and calibrator per batch)"),
)


def capture_cost(args: argparse.Namespace, home: Path) -> dict[str, float]:
    """Mean c=32 throughput in each of CAPTURE_STATES, alternating rounds (2 each) to share
    the noise: the same weights, as a hand-registered version (its model's own confidence)
    and as a calibrated one."""
    trusted = calibrated_version(args, home)
    results: dict[str, list[float]] = {state: [] for state, _ in CAPTURE_STATES}
    for _ in range(2):
        for state, _ in CAPTURE_STATES:
            env = {"APPLIANCE_CAPTURE_ENABLED": "false" if state == "plain" else "true"}
            server, url = appliance_server(
                args.model_dir, args.recipe, args.quantization, home, env,
                args.max_batch_wait_ms, deployed=trusted if state == "trust" else "model@1",
            )  # fmt: skip
            try:
                result = load_from_another_process(url, args.kind, 32, args.requests, args.seconds)
            finally:
                server.terminate()
                server.wait(30)
            results[state].append(result["ips"])
    return {state: statistics.mean(values) for state, values in results.items()}


def _median_round(results: list[dict[str, Any]], concurrency: str) -> dict[str, Any]:
    """Of one state's results over the rounds, the one with the median throughput at
    `concurrency` ("c1" or "c32")."""
    return sorted(results, key=lambda r: r[concurrency]["ips"])[len(results) // 2]


def serving_rows(
    args: argparse.Namespace, rounds: list[dict[str, Any]], limit: dict[str, float]
) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """The table's rows of the serving rounds, and the c=32 result loaded at start."""
    out: list[tuple[str, str]] = []
    wait = args.max_batch_wait_ms
    best = {}  # per state and concurrency, the round with the median throughput
    for state, _ in STATES:
        for c in ("c1", "c32"):
            best[state, c] = _median_round([r[state] for r in rounds], c)
            cell = _served(best[state, c][c])
            if c == "c32":
                cell += f", mean batch {best[state, c]['batch']}"
            label = "c=1" if c == "c1" else f"c=32 (batch wait {wait} ms)"
            out.append((f"appliance serve, {label}, {state}", cell))
    start_state, swap_state, rollback_state = (state for state, _ in STATES)
    for c, label in (("c1", "c=1"), ("c32", "c=32")):
        at_start = statistics.median(r[start_state][c]["ips"] for r in rounds)
        for state, name in ((swap_state, "hot-swapped"), (rollback_state, "rolled back")):
            other = statistics.median(r[state][c]["ips"] for r in rounds)
            out.append(
                (f"{name} ÷ loaded at start, {label}", f"{other / at_start:.2f} (target ≥ 0.90)")
            )
    if args.compare_wait is not None:
        other = _median_round([r["compare"] for r in rounds], "c32")
        out.append(
            (
                f"appliance serve, c=32 (batch wait {args.compare_wait} ms), hot-swapped in",
                f"{_served(other['c32'])}, mean batch {other['batch']}",
            )
        )
    c1, c32 = best[start_state, "c1"]["c1"], best[start_state, "c32"]["c32"]
    out.append(
        (
            "c=32 ÷ offline batch 32 (loaded at start)",
            f"{c32['ips'] / limit['b32_ips']:.2f} (target ≥ 0.90)",
        )
    )
    out.append(
        (
            "c=1 p50 − offline batch-1 (loaded at start)",
            f"{c1['p50_ms'] - limit['b1_ms']:+.2f} ms (target ≤ +1 ms)",
        )
    )
    return out, c32


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model-dir", type=Path, help="A trained model folder (e.g. a captioner version)."
    )
    parser.add_argument(
        "--task",
        default="image-to-text",
        choices=("image-to-text", "text-classification"),
        help="What the model does: photos in (the captioner), or ads in (the text-classifier).",
    )
    parser.add_argument(
        "--recipe", help="Recipe whose load() serves it (default: the task's built-in one)."
    )
    parser.add_argument("--quantization", default="none")
    parser.add_argument("--seconds", type=float, default=15, help="Time limit per measurement.")
    parser.add_argument(
        "--requests",
        type=int,
        default=2000,
        help="Request limit per measurement (the Python client only; wrk runs for --seconds).",
    )
    parser.add_argument(
        "--mlflow-python",
        default=os.environ.get("BENCH_MLFLOW_PYTHON"),
        help="A Python with mlflow, torch and transformers, for `mlflow models serve`.",
    )
    parser.add_argument(
        "--capture",
        action="store_true",
        help=(
            "Also measure c=32 with capture off, capture on, and capture on with the version "
            "calibrated (alternating, 2 rounds each)."
        ),
    )
    parser.add_argument(
        "--max-batch-wait-ms",
        type=int,
        default=25,
        help="The deployment's batch wait (a lone request never waits; see the batcher).",
    )
    parser.add_argument(
        "--compare-wait",
        type=int,
        metavar="MS",
        help="Also measure c=32 with this batch wait instead (e.g. 2), on the same server.",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help=(
            "Fresh servers, each measured in every state (start, hot swap, rollback); 0 with "
            "--capture measures only the capture states."
        ),
    )
    parser.add_argument(
        "--instances", type=int, default=1, help="The deployment's model instances (1-16)."
    )
    parser.add_argument(
        "--instance-kind",
        default="thread",
        choices=("thread", "process"),
        help="Instances on threads of the server, or in spawned worker processes.",
    )
    parser.add_argument("--markdown-out", type=Path)
    # internal: the load generator's own process
    parser.add_argument("--load", help=argparse.SUPPRESS)
    parser.add_argument("--kind", default="appliance", help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        data = payloads(args.kind)
        print(
            json.dumps(
                _load(args.load, args.kind, data, args.concurrency, args.requests, args.seconds)
            )
        )
        return 0
    if args.model_dir is None:
        parser.error("--model-dir is required")
    if args.rounds == 0 and (args.mlflow_python or not args.capture):
        parser.error("--rounds 0 measures only --capture (and not MLflow)")
    if args.task == "text-classification" and args.mlflow_python:
        parser.error("the MLflow comparison serves the captioner only")
    import torch

    torch.set_num_threads(2)
    if args.task == "text-classification":
        args.kind, args.recipe = "appliance-text", args.recipe or "text-classifier"
    else:
        args.kind, args.recipe = "appliance", args.recipe or "captioner"
    data = payloads(args.kind)
    rows: list[tuple[str, str]] = []
    limit = offline(args.model_dir, args.recipe, args.quantization, data, args.seconds, args.kind)
    rows.append(
        ("offline, batch 1", f"{limit['b1_ips']:.1f} img/s, {limit['b1_ms']:.2f} ms per call")
    )
    rows.append(("offline, batch 32", f"{limit['b32_ips']:.1f} img/s"))
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        rounds = [serving_round(args, home) for _ in range(args.rounds)]
        capture = capture_cost(args, home) if args.capture else None
    c32: dict[str, Any] = {}
    if rounds:
        served, c32 = serving_rows(args, rounds, limit)
        rows.extend(served)
    if capture is not None:
        for state, label in CAPTURE_STATES:
            rows.append((f"c=32, {label} (2 rounds)", f"{capture[state]:.1f} img/s"))
        plain = capture["plain"]
        rows.append(("capture cost at c=32", f"{1 - capture['capture'] / plain:.1%}"))
        rows.append(
            (
                "capture and calibration cost at c=32",
                f"{1 - capture['trust'] / plain:.1%} (target < 5%)",
            )
        )
    if args.mlflow_python:
        from bench_serving_mlflow import mlflow_throughput

        mlflow = mlflow_throughput(
            args.mlflow_python, args.model_dir, args.recipe, args.requests, args.seconds
        )
        rows.append(("mlflow models serve, c=32", _served(mlflow)))
        rows.append(
            ("appliance ÷ mlflow at c=32", f"{c32['ips'] / mlflow['ips']:.1f}× (target ≥ 4×)")
        )
    machine = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, torch {torch.__version__}"
    )
    table = "\n".join(
        ["| measurement | result |", "| --- | --- |", *(f"| {a} | {b} |" for a, b in rows)]
    )
    client = "wrk" if shutil.which("wrk") else "a Python client"
    model = f"model {args.model_dir.name}, quantization {args.quantization}, load from {client}"
    model += f", {args.instances} {args.instance_kind} instance(s)"
    rounds_note = f"median of {args.rounds} rounds, each on a fresh server"
    text = f"Machine: {machine}; {model}; {rounds_note}\n\n{table}\n"
    if args.kind == "appliance-text":
        text = text.replace("img/s", "ads/s")
    print(text)
    if args.markdown_out:
        args.markdown_out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
