"""What the client's classes ask of where the registry is: the local home (`local.py`, the
Services calls) or a server over HTTP (`remote.py`, the /v1 routes). Rows are plain dicts with
the fields the services return, whichever answers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

Row = dict[str, Any]
Point = tuple[str, float, int]
"""One metric value: key, value, step."""


class Backend(Protocol):
    where: str
    """The home's folder, or the server's URL (for messages and repr)."""

    def workspace(self, name: str, create: bool) -> Row: ...

    def workspaces(self) -> list[Row]: ...

    # Runs
    def create_run(
        self, workspace: str, *, recipe: str, params: Mapping[str, Any], name: str,
        dataset: str | None, seed: int | None,
    ) -> Row: ...  # fmt: skip

    def run(self, workspace: str, run_id: str) -> Row: ...

    def runs(self, workspace: str, status: str | None, limit: int | None) -> list[Row]: ...

    def run_metrics(self, workspace: str, run_id: str) -> dict[str, list[Row]]:
        """Every value logged, by key, in step order: `{key: [{step, value, logged_at}]}`."""
        ...

    def log_metrics(self, workspace: str, run_id: str, points: Sequence[Point]) -> None: ...

    def log_params(self, workspace: str, run_id: str, params: Mapping[str, Any]) -> None: ...

    def log_artifact(
        self, workspace: str, run_id: str, path: Path, name: str | None
    ) -> list[str]: ...

    def end_run(self, workspace: str, run_id: str, status: str, error: str | None) -> None: ...

    def cancel_run(self, workspace: str, run_id: str) -> Row:
        """Stop a queued or running run (its child process too); answers the run."""
        ...

    def run_logs(self, workspace: str, run_id: str, tail: int) -> str:
        """The child process's output (`tail` > 0: its last lines)."""
        ...

    # Datasets
    def add_dataset(self, workspace: str, name: str, folder: Path) -> Row: ...

    def datasets(self, workspace: str) -> list[Row]: ...

    def dataset(self, workspace: str, ref: str) -> Row: ...

    def dataset_diff(self, workspace: str, ref_a: str, ref_b: str) -> Row:
        """What changed from `ref_a` to `ref_b`, as `appliance dataset diff --json`."""
        ...

    # Models
    def models(self, workspace: str) -> list[Row]: ...

    def model_versions(self, workspace: str, name: str) -> list[Row]: ...

    def model_version(self, workspace: str, ref: str) -> Row: ...

    def register_model(
        self, workspace: str, run: Row, folder: Path, name: str, *,
        metrics: Mapping[str, float], recipe: str | None, task: str | None,
    ) -> Row: ...  # fmt: skip

    def set_alias(self, workspace: str, name: str, alias: str, version: int) -> Row: ...

    def unset_alias(self, workspace: str, name: str, alias: str) -> None: ...

    def promote(self, workspace: str, name: str, version: int, alias: str, force: bool) -> Row:
        """Through the evaluation gate; the gate's figures (`metric`, `candidate_value`,
        `current_value`, `dataset`, `rows`, `forced`, `summary`, ...). A worse candidate is
        refused (`GateRefused` locally, a Conflict either way) unless `force`."""
        ...

    def model_folder(self, version: Row) -> Path:
        """The version's files on this machine (remote: downloaded once into the cache)."""
        ...

    # Serving
    def deploy(self, body: Mapping[str, Any]) -> Row:
        """`POST /v1/deployments` with `body`."""
        ...

    def predict(self, endpoint: str, body: Mapping[str, Any]) -> Row:
        """`POST /v1/endpoints/{endpoint}/predict` with the JSON `body`."""
        ...

    def feedback(self, prediction_id: str, body: Mapping[str, Any]) -> Row:
        """`POST /v1/predictions/{prediction_id}/feedback` with `body`."""
        ...

    def close(self) -> None: ...
