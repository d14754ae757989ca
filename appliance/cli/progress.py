"""A one-line live progress bar for a training run: step, loss, elapsed and ETA."""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from appliance.runs.tracking import Runs

_WIDTH = 24


class ProgressLine:
    def __init__(self, runs: Runs, stream: TextIO | None = None, every: float = 5.0):
        self._runs = runs
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty()
        self._every = every  # how often to print a new line when not on a terminal
        self._last_print = 0.0
        self._started = time.time()
        self._shown = False

    def update(self, run: dict[str, Any]) -> None:
        """Redraw for `run` (pass this as wait_run's on_poll)."""
        progress = json.loads(run["progress"]) if run.get("progress") else None
        line = self.render(run["status"], progress, self._runs.last_value(run["id"], "loss"))
        if self._tty:
            self._stream.write("\r" + line.ljust(79)[:79])
            self._stream.flush()
            self._shown = True
        elif time.time() - self._last_print >= self._every:
            self._stream.write(line + "\n")
            self._stream.flush()
            self._last_print = time.time()

    def render(self, status: str, progress: dict[str, Any] | None, loss: float | None) -> str:
        elapsed = time.time() - self._started
        if not progress or not progress.get("total"):
            return f"{status} … {_clock(elapsed)}"
        step, total = int(progress["step"]), int(progress["total"])
        done = min(step / total, 1.0)
        bar = "█" * int(done * _WIDTH) + "░" * (_WIDTH - int(done * _WIDTH))
        eta = elapsed / done * (1 - done) if done > 0 else None
        text = f"{bar} {step}/{total}"
        if loss is not None:
            text += f" loss {loss:.3f}"
        text += f" {_clock(elapsed)}"
        if eta is not None and step < total:
            text += f" ETA {_clock(eta)}"
        elif step >= total and status == "running":
            text += " evaluating, registering…"
        return text

    def close(self) -> None:
        if self._shown:
            self._stream.write("\n")
            self._stream.flush()
            self._shown = False


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"
