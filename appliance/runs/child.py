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
import traceback
from types import FrameType

from appliance.errors import ApplianceError


class Cancelled(BaseException):
    """Raised in the main thread by SIGTERM; a BaseException so recipe code rarely swallows it."""


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
    with Services.open() as services:
        runs = services.runs
        try:
            runs.update(run_id, pid=os.getpid())
            runs.set_status(run_id, "running")
            execute(services, runs.get(run_id))
        except Cancelled:
            print("cancelled", flush=True)
            runs.set_status(run_id, "cancelled", "cancelled by the user")
            return 130
        except ApplianceError as exc:
            print(f"error: {exc}", flush=True)
            runs.set_status(run_id, "failed", str(exc))
            return 1
        except BaseException as exc:
            traceback.print_exc()
            runs.set_status(run_id, "failed", f"{type(exc).__name__}: {exc}")
            return 1
        runs.set_status(run_id, "succeeded")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
