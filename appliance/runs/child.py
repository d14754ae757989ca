"""The training child process: `python -m appliance.runs.child RUN_ID`.

It owns its run's status from `running` to the end. SIGTERM (a cancel, or Ctrl-C forwarded by
the parent) ends it as `cancelled`; any error ends it as `failed` with the reason recorded and the
traceback in the run's log. A crash that leaves no chance to record anything is caught by the
parent or, if the parent is gone too, by the reaper at the next start.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import traceback
from types import FrameType
from typing import TYPE_CHECKING

from appliance.errors import ApplianceError
from appliance.runs.executors.base import Cancelled

if TYPE_CHECKING:
    from appliance.runs.tracking import Runs


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Cancelled


def _die_with_parent() -> None:
    """When the launcher asked for it, be killed with the process that started us (Linux)."""
    parent = os.environ.get("APPLIANCE_RUN_PARENT_PID")
    if not parent or not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != int(parent):  # it died before the request was in place
        os._exit(1)


def main(argv: list[str]) -> int:
    from appliance.runs.pipeline import execute
    from appliance.services import Services

    (run_id,) = argv
    _die_with_parent()
    from appliance.models.loading import quiet_offline_transformers

    quiet_offline_transformers()
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, _on_sigterm)
    started = time.monotonic()
    with Services.open() as services:
        runs = services.runs
        try:
            runs.update(run_id, pid=os.getpid())
            runs.set_status(run_id, "running")
            execute(services, runs.get(run_id))
        except Cancelled:
            print("cancelled", flush=True)
            _record_usage(runs, run_id, started)
            runs.set_status(run_id, "cancelled", "cancelled by the user")
            return 130
        except ApplianceError as exc:
            print(f"error: {exc}", flush=True)
            _record_usage(runs, run_id, started)
            runs.set_status(run_id, "failed", str(exc))
            return 1
        except BaseException as exc:
            traceback.print_exc()
            _record_usage(runs, run_id, started)
            runs.set_status(run_id, "failed", f"{type(exc).__name__}: {exc}")
            return 1
        _record_usage(runs, run_id, started)
        runs.set_status(run_id, "succeeded")
    return 0


def _record_usage(runs: Runs, run_id: str, started: float) -> None:
    """What the run cost, for the platform report's cost per user: the CPU time of this process
    and of the children it waited for (data loader workers), and its wall time as GPU time when
    it used CUDA. Failing to record them never changes how the run ends."""
    times = os.times()
    usage = [
        ("cpu_seconds", times.user + times.system + times.children_user + times.children_system)
    ]
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        usage.append(("gpu_seconds", time.monotonic() - started))
    try:
        step = runs.last_step(run_id)
        runs.log_metrics(run_id, [(key, round(value, 3), step) for key, value in usage])
    except Exception as exc:
        print(f"warning: the run's CPU time was not recorded: {exc}", flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
