"""The demo's closed-loop chapter, run by the server's own scheduler: car photos land in the shared
folder, a dataset watch turns them into a new version, the retrain job trains v2 with low-light
augmentation, gates it against production and deploys it; then a deliberately degraded
experiment (v3, no gate) deploys and the post-deploy watch rolls it back by itself. Sellers'
traffic flows from the end of each training, so the watch has something to judge."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance.demo.options import DATASET, ENDPOINT, RECIPE, WORKSPACE, DemoOptions, rows_of
from appliance.errors import ApplianceError
from appliance.services import Services

if TYPE_CHECKING:
    from appliance.server.client import ServerClient

RETRAIN = "retrain-captioner"
WATCH = "watch-photos"
EXPERIMENT = "experiment"


def closed_loop(
    services: Services,
    server: ServerClient,
    photos: Path,
    traffic: list[bytes],
    options: DemoOptions,
    note: Callable[[str], None],
    say: Callable[[str], None],
    on_poll: Callable[[dict[str, Any]], None],
) -> dict[str, Any]:
    jobs = f"/v1/workspaces/{WORKSPACE}/jobs"
    watch_s = options.watch_seconds
    server.post_json(jobs, {
        "name": RETRAIN, "kind": "retrain", "trigger": "cron 0 3 * * *", "target": RECIPE,
        "params": {
            "recipe": RECIPE, "dataset": DATASET, "endpoint": ENDPOINT, "policy": "auto",
            "watch_s": watch_s, "train": {**options.train_params, "low_light_fraction": "0.5"},
        },
    })  # fmt: skip
    server.post_json(jobs, {
        "name": WATCH, "kind": "dataset_watch", "trigger": "every 2s", "target": DATASET,
        "params": {"source": str(photos), "retrain": RETRAIN},
    })  # fmt: skip
    note(
        f"scheduled {WATCH} (every 2 s: has {photos.name}/ changed?) and {RETRAIN} (nightly at "
        f"03:00 and on every trigger; low-light augmentation on; gate, auto-deploy, then a "
        f"{watch_s:g} s watch) — through POST /v1/workspaces/{WORKSPACE}/jobs"
    )
    retrain = wait_for_job(services, RETRAIN, on_poll, server, traffic)
    detail = retrain["detail"]
    note(
        f"{WATCH} saw the change → {detail.get('dataset')}; {RETRAIN} ran "
        f"(cause {retrain['cause']}) and registered {detail.get('version_ref')}"
    )
    say(f"   gate: {detail.get('gate')}")
    if detail.get("deployed"):
        verdict = detail.get("watch", {})
        say(
            f"   deployed at {ENDPOINT}; watched {verdict.get('predictions', 0)} live predictions "
            f"for {watch_s:g} s: {'failed' if verdict.get('failed') else 'healthy'}"
        )
    server.post_json(jobs, {
        "name": EXPERIMENT, "kind": "retrain", "trigger": "cron 0 3 1 1 *", "target": RECIPE,
        "params": {
            "recipe": RECIPE, "dataset": DATASET, "endpoint": ENDPOINT, "gate": "off",
            "watch_s": watch_s * 2, "train": {**options.train_params, "epochs": "1", "lr": "0"},
        },
    })  # fmt: skip
    server.post_json(f"{jobs}/{EXPERIMENT}/run")
    note(
        f"a deliberately degraded experiment: {EXPERIMENT} trains with a learning rate of 0 and "
        "deploys without the gate (run-now), leaving it to the watch"
    )
    experiment = wait_for_job(services, EXPERIMENT, on_poll, server, traffic)
    detail = experiment["detail"]
    verdict = detail.get("watch", {})
    if detail.get("rolled_back"):
        note(
            f"the watch failed {detail.get('version_ref')} after {verdict.get('predictions')} "
            f"predictions ({'; '.join(verdict.get('reasons', []))}) → rolled back automatically"
        )
    else:
        note(f"the experiment ended {experiment['status']}: {detail}")
    return {"retrain": retrain, "experiment": experiment}


def pause_watch(services: Services) -> None:
    """The watched folder is the demo's scratch space, gone when it ends: pause the watch so a
    later `appliance serve` or `up` does not fail on it every two seconds."""
    services.jobs.set_enabled(WORKSPACE, WATCH, False)


@contextmanager
def sellers(server: ServerClient, images: list[bytes]) -> Iterator[None]:
    """Steady traffic on a background thread while the block runs (errors are the watch's
    business, not the sender's)."""
    stop = threading.Event()

    def send() -> None:
        i = 0
        while not stop.is_set():
            try:
                server.post_bytes(
                    f"/v1/endpoints/{ENDPOINT}/predict", images[i % len(images)], "image/png"
                )
            except (ApplianceError, OSError):
                pass
            i += 1
            stop.wait(0.02)

    thread = threading.Thread(target=send, name="demo-sellers", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(30)


def wait_for_job(
    services: Services,
    name: str,
    on_poll: Callable[[dict[str, Any]], None],
    server: ServerClient,
    traffic: list[bytes],
    timeout_s: float = 1800,
    since: str = "",
) -> dict[str, Any]:
    """The job's first finished run started after `since`, showing its training run's progress
    meanwhile. Sellers send traffic once training is over (the gate, the deploy and the watch):
    on two cores, traffic during training would only slow both down."""
    job = services.jobs.get(WORKSPACE, name)
    deadline = time.monotonic() + timeout_s
    with ExitStack() as stack:
        selling = False
        while time.monotonic() < deadline:
            runs = [r for r in services.jobs.runs(job["id"], 1) if r["started_at"] > since]
            if runs and runs[0]["status"] != "running":
                return runs[0]
            training = services.registry.query(
                "SELECT id FROM runs WHERE job_id = ? AND created_at > ?"
                " ORDER BY created_at DESC LIMIT 1",
                (job["id"], since),
            )
            if training:
                run = services.runs.get(training[0]["id"])
                on_poll(run)
                if not selling and run["status"] not in ("queued", "running"):
                    stack.enter_context(sellers(server, traffic))
                    selling = True
            time.sleep(0.5)
    raise ApplianceError(f"job {name} did not finish within {timeout_s:.0f} s")


def sample_images(folder: Path) -> list[bytes]:
    return [(folder / row["file_name"]).read_bytes() for row in rows_of(folder)]
