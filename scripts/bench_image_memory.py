"""Memory of decoding large images: a 6000×6600 PNG and JPEG (the issue's case), decoded in a
fresh Python (one, then eight at once from threads), and sent to a real `appliance serve` (one,
then eight concurrent predicts). Reports peak (VmHWM) and resident (VmRSS) memory above idle,
in MB. The server part trains the tests' tiny colour recipe in a temporary home first.

  python scripts/bench_image_memory.py [--server] [--review-recent-inputs N]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZE = (6000, 6600)

DECODE = r"""
import io, json, sys, threading
from PIL import Image
from appliance.tasks import images

def status(pid="self"):
    values = {}
    for line in open(f"/proc/{pid}/status"):
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(value.split()[0]) / 1024
    return values

small = io.BytesIO()
Image.new("RGB", (64, 48), "red").save(small, "PNG")
images.decode_image(small.getvalue(), 10**6)
data = open(sys.argv[1], "rb").read()
copies = int(sys.argv[2])
open("/proc/self/clear_refs", "w").write("5")
idle = status()["VmRSS"]
start = threading.Barrier(copies)

def decode():
    start.wait()
    images.decode_image(data, 40_000_000)

threads = [threading.Thread(target=decode) for _ in range(copies)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
now = status()
print(json.dumps({"idle": idle, "peak": now["VmHWM"] - idle, "after": now["VmRSS"] - idle}))
"""


def pictures(folder: Path) -> dict[str, Path]:
    from PIL import Image, ImageDraw

    red = Image.linear_gradient("L").resize(SIZE)
    green = Image.radial_gradient("L").resize(SIZE)
    blue = Image.new("L", SIZE, 90)
    draw = ImageDraw.Draw(blue)
    for x in range(0, SIZE[0], 500):
        draw.rectangle((x, x // 2, x + 200, x // 2 + 800), fill=(x * 7) % 255)
    picture = Image.merge("RGB", (red, green, blue))
    files = {"PNG": folder / "big.png", "JPEG": folder / "big.jpeg"}
    picture.save(files["PNG"], "PNG")
    picture.save(files["JPEG"], "JPEG", quality=85)
    return files


def decoded(files: dict[str, Path]) -> None:
    print("| decode in a fresh Python | peak above idle | resident after |")
    print("| --- | ---: | ---: |")
    for kind, path in files.items():
        for copies in (1, 8):
            done = subprocess.run(
                [sys.executable, "-c", DECODE, str(path), str(copies)],
                capture_output=True, text=True, check=True, cwd=ROOT,
            )  # fmt: skip
            got = json.loads(done.stdout)
            what = f"{kind} ({path.stat().st_size // 1000} KB), {copies} at once"
            print(f"| {what} | {got['peak']:.0f} MB | {got['after']:.0f} MB |")


def served(files: dict[str, Path], folder: Path, recent: int | None) -> None:
    import httpx
    from PIL import Image

    home = _deployed(folder / "home")
    port = _free_port()
    env = {**os.environ, "APPLIANCE_HOME": str(home), "APPLIANCE_PORT": str(port)}
    if recent is not None:
        env["APPLIANCE_REVIEW_RECENT_INPUTS"] = str(recent)
    with (folder / "serve.log").open("ab") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "appliance", "serve", "--log-level", "warning"],
            env=env, cwd=ROOT, stderr=log,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    predict = f"{base}/v1/endpoints/captions/predict"
    try:
        _wait(f"{base}/v2/health/ready", server)
        small = io.BytesIO()
        Image.new("RGB", (64, 48), "red").save(small, "PNG")
        for _ in range(5):
            httpx.post(predict, content=small.getvalue(), headers={"content-type": "image/png"})
        print("| `appliance serve`, predict | idle | peak above idle | resident after |")
        print("| --- | ---: | ---: | ---: |")
        for kind, path in files.items():
            data = path.read_bytes()
            for copies in (1, 8):
                time.sleep(1)
                Path(f"/proc/{server.pid}/clear_refs").write_text("5")
                idle = _status(server.pid)["VmRSS"]
                codes: list[int] = []

                def send(data: bytes = data, codes: list[int] = codes, kind: str = kind) -> None:
                    headers = {"content-type": f"image/{kind.lower()}"}
                    answer = httpx.post(predict, content=data, headers=headers, timeout=120)
                    codes.append(answer.status_code)

                threads = [threading.Thread(target=send) for _ in range(copies)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                time.sleep(1)  # capture and review have taken theirs
                now = _status(server.pid)
                assert codes == [200] * copies, codes
                print(f"| {kind}, {copies} at once | {idle:.0f} MB | {now['VmHWM'] - idle:.0f} MB "
                      f"| {now['VmRSS'] - idle:.0f} MB |")  # fmt: skip
    finally:
        server.terminate()
        server.wait(30)


def _deployed(home: Path) -> Path:
    from click.testing import CliRunner

    from appliance.cli import cli
    from appliance.datasets.synthetic import generate
    from appliance.runs.launcher import start_run
    from appliance.services import Services

    os.environ["APPLIANCE_HOME"] = str(home)
    with Services.open(home=home) as services:
        services.workspaces.create("ads")
        photos = generate(home.parent / "photos", count=40, seed=1).path
        services.datasets.add("ads", "photos", photos)
        services.recipes.add("ads", ROOT / "tests" / "recipes" / "colour")
        run = start_run(services, "ads", "colour", "photos", {"rank": 0}).wait()
        assert run["status"] == "succeeded", run["error"]
    result = CliRunner().invoke(cli, ["deploy", "ads", "captions", "colour@1"])
    assert result.exit_code == 0, result.output
    return home


def _status(pid: int) -> dict[str, float]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(value.split()[0]) / 1024
    return values


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait(url: str, server: subprocess.Popen[bytes]) -> None:
    import httpx

    deadline = time.time() + 120
    while time.time() < deadline and server.poll() is None:
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the server did not become ready (see serve.log)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", action="store_true", help="also measure `appliance serve`")
    parser.add_argument(
        "--review-recent-inputs", type=int, default=None,
        help="the server's review_recent_inputs (default: the setting's)",
    )  # fmt: skip
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = pictures(folder)
        decoded(files)
        if args.server:
            served(files, folder, args.review_recent_inputs)


if __name__ == "__main__":
    main()
