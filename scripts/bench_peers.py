"""The captioner behind three servers, side by side: `appliance serve` (the version deployed
into the running server, then hot-swapped, as users get it), BentoML (adaptive batching) and
LitServe (batching, its recommended workers for a CPU). All three call the recipe's same `load()`
and the same `predict` on the same decoded PNG; wrk drives each with the same closed loop at
c=1, 8, 32 and 64, in alternating rounds (appliance, BentoML, LitServe, appliance, ...).
Second configurations of ours, by --servers: appliance-t1 (one torch thread) and appliance-hf
(the folder registered without the recipe, so its default backend serves it: ONNX Runtime).

BentoML and LitServe are never dependencies of the project: they run in their own virtualenv,
named by --peers-python (or $BENCH_PEERS_PYTHON), with the repository on sys.path:

  python3 -m venv /work/bench-venvs/peers
  /work/bench-venvs/peers/bin/pip install torch==2.13.0 bentoml==1.4.40 litserve==0.2.19 \\
      transformers==5.24.0 pillow==13.0.0 numpy==2.4.6 sacrebleu==2.6.0 safetensors==0.8.0 \\
      tokenizers==0.23.3
  BENCH_PEERS_PYTHON=/work/bench-venvs/peers/bin/python \\
      .venv/bin/python scripts/bench_peers.py --seconds 15 --rounds 2

Without --model-dir it trains the captioner once (the recipe's defaults on 2,000 generated
photos) into --train-home and reuses that version on later runs. Needs wrk (`apt-get install wrk`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench_serving import free_port, wait_http

ROOT = Path(__file__).resolve().parents[1]
CONCURRENCIES = (1, 8, 32, 64)
SERVERS = ("appliance", "bentoml", "litserve")
# Second configurations of ours, labelled as such: "appliance-t1", the torch_threads setting at 1;
# "appliance-hf", the same folder registered as a Hugging Face folder (no recipe), so the
# deploy's default backend (auto: ONNX Runtime on a CPU, docs/benchmarks.md) serves it.
KNOWN = (*SERVERS, "appliance-t1", "appliance-hf")
PHOTOS = 64

# The recipe folder imported as a package (its modules import their siblings relatively), as
# the appliance's load_module does, without the appliance's registry and server dependencies.
LOADER = textwrap.dedent(
    """
    import importlib, importlib.machinery, importlib.util, io, os, sys
    from pathlib import Path

    sys.path.insert(0, REPO)
    _package = importlib.machinery.ModuleSpec("appliance_recipe", None, is_package=True)
    _package.submodule_search_locations = [RECIPE_DIR]
    sys.modules["appliance_recipe"] = importlib.util.module_from_spec(_package)


    def load_predictor():
        import torch
        from PIL import Image

        if int(os.environ.get("BENCH_TORCH_THREADS", "0")) > 0:  # the cores shared by workers
            torch.set_num_threads(int(os.environ["BENCH_TORCH_THREADS"]))
        module = importlib.import_module("appliance_recipe." + MODULE)
        predictor = module.load(Path(MODEL_DIR), device="cpu", quantization=QUANTIZATION)
        predictor.predict([Image.new("RGB", (64, 64))] * 2)  # warm-up, as a deploy does
        threads = torch.get_num_threads()
        line = f"peer loaded: pid {os.getpid()}, torch threads {threads}"
        print(line, file=sys.stderr, flush=True)
        return predictor


    def decode(data):
        from PIL import Image

        return Image.open(io.BytesIO(data)).convert("RGB")
    """
)

BENTO_SERVICE = textwrap.dedent(
    """
    import bentoml
    from PIL import Image

    from loader import load_predictor


    @bentoml.service(workers=WORKERS)
    class Captioner:
        def __init__(self):
            self.predictor = load_predictor()

        @bentoml.api(batchable=True, max_batch_size=BATCH, max_latency_ms=60000)
        def caption(self, images: list[Image.Image]) -> list[str]:
            rgb = [image.convert("RGB") for image in images]
            return [text for text, *_ in self.predictor.predict(rgb)]
    """
)

LIT_SERVER = textwrap.dedent(
    """
    import litserve as ls

    from loader import decode, load_predictor


    class Captioner(ls.LitAPI):
        def setup(self, device):
            self.predictor = load_predictor()

        def decode_request(self, request):
            return decode(request["image"].file.read())

        def predict(self, images):
            return [text for text, *_ in self.predictor.predict(list(images))]

        def encode_response(self, text):
            return {"description": text}


    if __name__ == "__main__":
        api = Captioner(max_batch_size=BATCH, batch_timeout=WAIT_S)
        server = ls.LitServer(api, accelerator="cpu", workers_per_device=WORKERS, fast_queue=True)
        server.run(host="127.0.0.1", port=PORT, log_level="warning", generate_client_file=False)
    """
)

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
    '{"requests": %d, "duration_us": %d, "non_2xx": %d, "socket_errors": %d, '
    .. '"p50_us": %d, "p99_us": %d}\\n', summary.requests, summary.duration, e.status,
    e.connect + e.read + e.write + e.timeout, latency:percentile(50), latency:percentile(99)))
end
"""


def photos(count: int = PHOTOS) -> tuple[list[bytes], list[str]]:
    """Generated product photos (PNG bytes) and their true captions, the same every run."""
    from appliance.datasets.synthetic import generate

    with tempfile.TemporaryDirectory() as tmp:
        folder = generate(Path(tmp) / "imgs", count=count, seed=11, low_light_fraction=0.1).path
        rows = [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]
        return [(folder / r["file_name"]).read_bytes() for r in rows], [r["text"] for r in rows]


def captioner(args: argparse.Namespace) -> Path:
    """The captioner version's folder: --model-dir, or the one trained in --train-home (trained
    there first if there is none)."""
    if args.model_dir is not None:
        return Path(args.model_dir).resolve()
    from appliance.datasets.synthetic import generate
    from appliance.runs.launcher import start_run
    from appliance.services import Services

    with Services.open(home=args.train_home) as services:
        services.workspaces.ensure("bench")
        if not any(m["name"] == "captioner" for m in services.models.list("bench")):
            print(f"training the captioner in {args.train_home} (once)", flush=True)
            with tempfile.TemporaryDirectory() as tmp:
                folder = generate(Path(tmp) / "photos", count=2000, seed=0).path
                services.datasets.add("bench", "photos", folder)
                launch = start_run(services, "bench", "captioner", "photos", {}, "captioner")
                run = launch.wait(interval=2.0)
            if run["status"] != "succeeded":
                raise SystemExit(f"training {run['status']}: {run['error']}")
        versions = services.models.versions("bench", "captioner")
        version = max(versions, key=lambda v: v["version"])
        return services.models.folder(version)


def bodies(server: str, data: list[bytes]) -> tuple[list[bytes], str]:
    """Each server's request for each photo, in the shape it expects, with one content type:
    raw image/png for the appliance, a multipart file (`images`, `image`) for the peers."""
    if server.startswith("appliance"):
        return data, "image/png"
    field = "images" if server == "bentoml" else "image"
    boundary = uuid.uuid4().hex  # one for all, so the Lua script sends one content type
    made = [
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
            f'filename="p.png"\r\nContent-Type: image/png\r\n\r\n'
        ).encode()
        + d
        + f"\r\n--{boundary}--\r\n".encode()
        for d in data
    ]
    return made, f"multipart/form-data; boundary={boundary}"


def post(url: str, body: bytes, ctype: str) -> tuple[int, str]:
    """One request; (status, the answer's caption)."""
    import httpx

    response = httpx.post(url, content=body, headers={"content-type": ctype}, timeout=120)
    if response.status_code != 200:
        return response.status_code, response.text[:200]
    answer = response.json()
    if isinstance(answer, list):  # BentoML answers a batchable API's list
        answer = answer[0]
    return 200, answer if isinstance(answer, str) else str(answer.get("description"))


def wrk(
    url: str, payload: tuple[list[bytes], str], concurrency: int, seconds: int
) -> dict[str, Any]:
    """wrk's closed loop: `concurrency` keep-alive connections on one thread, cycling through
    the photos, for `seconds` (bounded by time only)."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, body in enumerate(payload[0]):
            (Path(tmp) / f"{i}.body").write_bytes(body)
            paths.append(f'"{Path(tmp) / f"{i}.body"}"')
        script = Path(tmp) / "load.lua"
        script.write_text(
            WRK_SCRIPT.replace("PATHS", ", ".join(paths)).replace("CTYPE", payload[1])
        )
        command = ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "--timeout", "60s"]
        out = subprocess.run(
            [*command, "-s", str(script), url], capture_output=True, text=True, check=True
        ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    ok = result["requests"] - result["non_2xx"]
    return {
        "rps": ok / (result["duration_us"] / 1e6),
        "p50_ms": result["p50_us"] / 1000,
        "p99_ms": result["p99_us"] / 1000,
        "requests": result["requests"],
        "errors": result["non_2xx"] + result["socket_errors"],
    }


@contextlib.contextmanager
def process(
    command: list[str], env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """A server in its own process group, ended with all its children whatever happens."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@contextlib.contextmanager
def appliance(
    args: argparse.Namespace, model_dir: Path, tmp: Path, threads: int = 0,
    recipe: str | None = "captioner",
) -> Iterator[tuple[str, Path | None]]:  # fmt: skip
    """`appliance serve` on a fresh home, then `appliance deploy` of model@1 into the running
    server and of model@2 (the same weights) over it: the hot swap users get. Registered with
    the captioner `recipe`, or without one (None): the Hugging Face runtime serves the folder."""
    from appliance.models.intake import register_folder
    from appliance.services import Services

    home = tmp / f"home-{uuid.uuid4().hex[:6]}"
    with Services.open(home=home) as services:
        services.workspaces.ensure("bench")
        for _ in range(2):  # as `appliance model register` does, its check aside
            register_folder(services, "bench", "model", model_dir, recipe=recipe, check=False)
    port = free_port()
    env = {**os.environ, "APPLIANCE_HOME": str(home), "APPLIANCE_PORT": str(port)}
    if threads:
        env["APPLIANCE_TORCH_THREADS"] = str(threads)
    command = [sys.executable, "-m", "appliance", "serve", "--log-level", "warning"]
    with process(command, env, tmp / "appliance.log"):
        wait_http(f"http://127.0.0.1:{port}/v2/health/ready")
        for version in ("model@1", "model@2"):
            deploy = [sys.executable, "-m", "appliance", "deploy", "bench", "bench", version]
            deploy += ["--device", "cpu", "--quantization", args.quantization]
            deploy += [
                "--max-batch-size",
                str(args.batch),
                "--max-batch-wait-ms",
                str(args.wait_ms),
            ]
            deploy += args.appliance_option
            subprocess.run(deploy, env=env, check=True, stdout=subprocess.DEVNULL)
        yield f"http://127.0.0.1:{port}/v1/endpoints/bench/predict", home


def peer_files(args: argparse.Namespace, model_dir: Path, tmp: Path) -> Path:
    from appliance.recipes.catalog import builtin_recipes

    spec = builtin_recipes()["captioner"]
    folder = tmp / "peers"
    folder.mkdir(exist_ok=True)
    loader = LOADER
    for name, value in (
        ("REPO", str(ROOT)), ("RECIPE_DIR", str(spec.folder)), ("MODULE", Path(spec.module).stem),
        ("MODEL_DIR", str(model_dir)), ("QUANTIZATION", args.quantization),
    ):  # fmt: skip
        loader = loader.replace(name, repr(value))
    (folder / "loader.py").write_text(loader)
    (folder / "bento_service.py").write_text(
        BENTO_SERVICE.replace("WORKERS", str(args.bentoml_workers)).replace(
            "BATCH", str(args.batch)
        )
    )
    return folder


def threads(workers: int) -> int:
    """Torch threads per peer worker: the cores shared out (0, torch's default, for one worker).
    Two workers of two OpenMP threads each on two cores make libgomp wait on descheduled
    threads."""
    return 0 if workers == 1 else max(1, (os.cpu_count() or 1) // workers)


def loaded(log: Path) -> str:
    lines = log.read_text(errors="replace").splitlines()
    return "; ".join(line.split("peer loaded: ")[1] for line in lines if "peer loaded: " in line)


@contextlib.contextmanager
def bentoml(args: argparse.Namespace, folder: Path, tmp: Path) -> Iterator[tuple[str, Path | None]]:
    port = free_port()
    env = {**os.environ, "BENTOML_HOME": str(tmp / "bentoml"), "BENTOML_DO_NOT_TRACK": "true"}
    env["BENCH_TORCH_THREADS"] = str(threads(args.bentoml_workers))
    command = [args.peers_python, "-m", "bentoml", "serve", "bento_service:Captioner"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--working-dir", str(folder)]
    with process(command, env, tmp / "bentoml.log"):
        wait_http(f"http://127.0.0.1:{port}/readyz", 300)
        print(f"  bentoml up: {loaded(tmp / 'bentoml.log')}", flush=True)
        yield f"http://127.0.0.1:{port}/caption", None


@contextlib.contextmanager
def litserve(
    args: argparse.Namespace, folder: Path, tmp: Path
) -> Iterator[tuple[str, Path | None]]:
    port = free_port()
    script = folder / "lit_server.py"
    script.write_text(
        LIT_SERVER.replace("WORKERS", str(args.litserve_workers))
        .replace("BATCH", str(args.batch))
        .replace("WAIT_S", str(args.wait_ms / 1000))
        .replace("PORT", str(port))
    )
    env = {**os.environ, "PYTHONPATH": str(folder)}
    env["BENCH_TORCH_THREADS"] = str(threads(args.litserve_workers))
    with process([args.peers_python, str(script)], env, tmp / "litserve.log"):
        wait_http(f"http://127.0.0.1:{port}/health", 300)
        time.sleep(2)  # every worker's line
        print(f"  litserve up: {loaded(tmp / 'litserve.log')}", flush=True)
        yield f"http://127.0.0.1:{port}/predict", None


def timings(url: str, home: Path, since: str) -> dict[str, float]:
    """The appliance's own mean queue_ms, inference_ms and batch size over the predictions it
    captured since `since` (its monitoring summary flushes the capture first)."""
    import sqlite3

    import httpx

    base = url.split("/v1/")[0]
    httpx.get(f"{base}/v1/workspaces/bench/monitoring/summary", timeout=60)
    with sqlite3.connect(home / "registry.db") as db:
        row = db.execute(
            "SELECT AVG(queue_ms), AVG(inference_ms), AVG(batch_size), AVG(latency_ms)"
            " FROM predictions WHERE created_at >= ?",
            (since,),
        ).fetchone()
    return dict(zip(("queue_ms", "inference_ms", "batch", "latency_ms"), row, strict=True))


def measure(
    server: str, served: tuple[str, Path | None], data: list[bytes], truth: list[str],
    args: argparse.Namespace,
) -> dict[int, dict[str, Any]]:  # fmt: skip
    """Check the answers are captions, warm up, then each concurrency in turn."""
    from appliance.registry import utcnow

    url, home = served
    payload = bodies(server, data)
    checked = [post(url, payload[0][i], payload[1]) for i in range(8)]
    if any(status != 200 for status, _ in checked):
        raise SystemExit(f"{server} answered {checked}")
    right = sum(text == truth[i] for i, (_, text) in enumerate(checked))
    print(f"  {server}: {right}/8 answers equal the true caption, e.g. {checked[0][1]!r}")
    wrk(url, payload, 32, args.warmup)
    results: dict[int, dict[str, Any]] = {}
    for c in CONCURRENCIES:
        time.sleep(2)  # the last cell's requests still in flight when wrk stopped finish
        since = utcnow()
        results[c] = r = wrk(url, payload, c, args.seconds)
        r["right"] = right
        if home is not None:  # where the appliance's time went, by its own account
            r |= timings(url, home, since)
        print(
            f"  {server} c={c}: {r['rps']:.1f} req/s, p50 {r['p50_ms']:.1f} ms, "
            f"p99 {r['p99_ms']:.1f} ms, {r['requests']} requests, errors {r['errors']}",
            flush=True,
        )
        if home is not None and r["batch"] is not None:
            print(
                f"    mean batch {r['batch']:.1f}, queue {r['queue_ms']:.1f} ms, inference "
                f"{r['inference_ms']:.1f} ms, latency {r['latency_ms']:.1f} ms (its own)",
                flush=True,
            )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, help="A trained captioner version's folder.")
    parser.add_argument(
        "--train-home",
        type=Path,
        default=Path(tempfile.gettempdir()) / "bench-peers-home",
        help="Where the captioner is trained once and reused (without --model-dir).",
    )
    parser.add_argument(
        "--peers-python",
        default=os.environ.get("BENCH_PEERS_PYTHON"),
        help="A Python with bentoml and litserve (their own venv; see the module docstring).",
    )
    parser.add_argument("--quantization", default="none")
    parser.add_argument("--seconds", type=int, default=15, help="wrk's run per concurrency.")
    parser.add_argument("--warmup", type=int, default=5, help="wrk at c=32 first, not counted.")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32, help="Max batch size, every server.")
    parser.add_argument(
        "--wait-ms", type=int, default=25, help="Batch wait: appliance, and LitServe's timeout."
    )
    parser.add_argument("--bentoml-workers", type=int, default=1)
    parser.add_argument(
        "--litserve-workers", type=int, default=2, help="Its docs: the cores, on a CPU."
    )
    parser.add_argument(
        "--appliance-option",
        action="append",
        default=[],
        help="An extra `appliance deploy` option for the appliance's deploys (repeatable).",
    )
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--markdown-out", type=Path)
    args = parser.parse_args()
    servers = args.servers.split(",")
    if unknown := set(servers) - set(KNOWN):
        parser.error(f"unknown servers {sorted(unknown)}: choose among {', '.join(KNOWN)}")
    if {"bentoml", "litserve"} & set(servers) and not args.peers_python:
        parser.error("--peers-python (or BENCH_PEERS_PYTHON) is needed for the peers")
    model_dir = captioner(args)
    print(f"captioner: {model_dir}", flush=True)
    data, truth = photos()
    rounds: list[dict[str, dict[int, dict[str, Any]]]] = []
    loads: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as name:
        tmp = Path(name)
        folder = peer_files(args, model_dir, tmp)
        for n in range(args.rounds):
            print(f"round {n + 1}, load average {os.getloadavg()}", flush=True)
            loads.append(" / ".join(f"{x:.2f}" for x in os.getloadavg()))
            results: dict[str, dict[int, dict[str, Any]]] = {}
            for server in servers:
                if server.startswith("appliance"):
                    threads = 1 if server == "appliance-t1" else 0
                    recipe = None if server == "appliance-hf" else "captioner"
                    context = appliance(args, model_dir, tmp, threads, recipe)
                else:
                    context = {"bentoml": bentoml, "litserve": litserve}[server](args, folder, tmp)
                with context as served:
                    results[server] = measure(server, served, data, truth, args)
            rounds.append(results)
    text = report(args, servers, rounds, loads)
    print(text)
    if args.markdown_out:
        args.markdown_out.write_text(text)
    return 0


def report(
    args: argparse.Namespace,
    servers: list[str],
    rounds: list[dict[str, dict[int, dict[str, Any]]]],
    loads: list[str],
) -> str:
    """Per concurrency and server: the median over rounds; the ratios appliance ÷ peer are
    taken within each round, then their median (and range)."""
    peers = [s for s in servers if not s.startswith("appliance")]
    head = "| c | server | req/s | p50 ms | p99 ms | errors |"
    lines = [head + "".join(f" ÷ {p} req/s |" for p in peers), "|" + " --- |" * (6 + len(peers))]
    for c in CONCURRENCIES:
        for server in servers:
            cells = [r[server][c] for r in rounds]
            rps = statistics.median(x["rps"] for x in cells)
            p50 = statistics.median(x["p50_ms"] for x in cells)
            p99 = statistics.median(x["p99_ms"] for x in cells)
            errors = sum(x["errors"] for x in cells)
            row = f"| {c} | {server} | {rps:.1f} | {p50:.1f} | {p99:.1f} | {errors} |"
            for peer in peers:
                if not server.startswith("appliance"):
                    row += " |"
                    continue
                ratios = [r[server][c]["rps"] / r[peer][c]["rps"] for r in rounds]
                row += f" {statistics.median(ratios):.2f}× ({min(ratios):.2f}–{max(ratios):.2f}) |"
            lines.append(row)
    import torch

    machine = (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"torch {torch.__version__}; load average at each round's start: {', '.join(loads)}"
    )
    setup = (
        f"max batch {args.batch}, appliance wait {args.wait_ms} ms "
        f"{' '.join(args.appliance_option)}, BentoML workers {args.bentoml_workers}, "
        f"LitServe workers {args.litserve_workers} (batch_timeout {args.wait_ms / 1000} s), "
        f"quantization {args.quantization}; {len(rounds)} rounds of {args.seconds} s per cell"
    )
    return f"{machine}\n{setup}\n\n" + "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
