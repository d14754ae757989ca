"""`ActiveRun`: a run a notebook or script logs into, MLflow-style: params, metrics by step,
files, and the model it made; it ends with its `with` block."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from appliance.client.backend import Backend, Row
from appliance.client.model import ModelVersion
from appliance.errors import Conflict

if TYPE_CHECKING:
    from appliance.client.workspace import Workspace


@dataclass
class ActiveRun:
    workspace: Workspace = field(repr=False)
    id: str
    _ended: bool = field(default=False, repr=False)

    @property
    def _backend(self) -> Backend:
        return self.workspace.client.backend

    @property
    def _ws(self) -> str:
        return self.workspace.name

    @property
    def info(self) -> Row:
        return self._backend.run(self._ws, self.id)

    def metrics(self) -> dict[str, list[Row]]:
        """Every value logged, by key, in step order: `{key: [{step, value, logged_at}]}`."""
        return self._backend.run_metrics(self._ws, self.id)

    def latest_metrics(self) -> dict[str, float]:
        """Each key's value at its last step."""
        return {key: points[-1]["value"] for key, points in self.metrics().items()}

    def log_metric(self, key: str, value: float, step: int = 0) -> None:
        self._backend.log_metrics(self._ws, self.id, [(key, value, step)])

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        self._backend.log_metrics(self._ws, self.id, [(k, v, step) for k, v in metrics.items()])

    def log_param(self, key: str, value: Any) -> None:
        self._backend.log_params(self._ws, self.id, {key: value})

    def log_params(self, params: dict[str, Any]) -> None:
        """Params are set once: the same value again is fine, another one is a Conflict."""
        self._backend.log_params(self._ws, self.id, params)

    def log_artifact(self, path: str | Path, name: str | None = None) -> list[str]:
        """Store a file, or every file under a folder, with the run; returns the stored names."""
        return self._backend.log_artifact(self._ws, self.id, Path(path).expanduser(), name)

    def register_model(
        self,
        folder: str | Path,
        name: str,
        metrics: dict[str, float] | None = None,
        recipe: str | None = None,
        task: str | None = None,
    ) -> ModelVersion:
        """Register `folder` as the next version of `name`, with this run as its lineage.
        Metrics default to the latest value of each metric the run logged. As from the CLI,
        the folder is first loaded and asked one input (`appliance.models.intake`): served by
        `recipe`'s load() when one is named (default: the run's recipe, when the workspace
        has it), else by the Hugging Face runtime for `task` (default: read from its
        config.json). Remotely the folder is uploaded and the box does the same."""
        row = self._backend.register_model(
            self._ws, self.info, Path(folder).expanduser(), name,
            metrics=metrics if metrics is not None else self.latest_metrics(),
            recipe=recipe, task=task,
        )  # fmt: skip
        return ModelVersion(self.workspace, row)

    def cancel(self) -> Row:
        """Stop a queued or running run (its child process is stopped too); one already
        finished is a Conflict. Answers the run."""
        row = self._backend.cancel_run(self._ws, self.id)
        self._ended = True
        return row

    def logs(self, tail: int = 0) -> str:
        """The output of the run's child process (`tail`: its last lines), as `appliance run
        logs`; a run logged from Python has none (NotFound)."""
        return self._backend.run_logs(self._ws, self.id, tail)

    def end(self, status: str = "succeeded", error: str | None = None) -> None:
        if not self._ended:
            self._backend.end_run(self._ws, self.id, status, error)
            self._ended = True

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._ended:
            return
        if kind is None:
            self.end("succeeded")
        elif issubclass(kind, KeyboardInterrupt):
            self.end("cancelled", "interrupted")
        else:
            # Already finished elsewhere: keep the original error propagating.
            with contextlib.suppress(Conflict):
                self.end("failed", f"{kind.__name__}: {exc}")
