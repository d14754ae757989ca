"""The client on this machine's home: the registry through Services, with or without a server.
Deploying and predicting need the endpoint's process, so they go through the home's running
server (found by its record, as the CLI finds it); feedback does too when one runs, so the
prediction it rates has been written."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from appliance.client.backend import Point, Row
from appliance.client.errors import Unreachable, refusal
from appliance.errors import ApplianceError, NotFound
from appliance.services import Services

if TYPE_CHECKING:
    from appliance.server.client import ServerClient


class LocalBackend:
    def __init__(self, services: Services):
        self.services = services
        self.where = str(services.settings.home)
        self._server: ServerClient | None = None

    def workspace(self, name: str, create: bool) -> Row:
        workspaces = self.services.workspaces
        return workspaces.ensure(name) if create else workspaces.get(name)

    def workspaces(self) -> list[Row]:
        return self.services.workspaces.list()

    def create_run(
        self, workspace: str, *, recipe: str, params: Mapping[str, Any], name: str,
        dataset: str | None, seed: int | None,
    ) -> Row:  # fmt: skip
        lineage: dict[str, Any] = {"seed": seed}
        if dataset is not None:
            version = self.services.datasets.get(workspace, dataset)
            lineage.update(dataset_id=version["dataset_id"], dataset_digest=version["digest"])
        return self.services.runs.create(
            workspace, recipe=recipe, name=name, params=params, **lineage
        )

    def run(self, workspace: str, run_id: str) -> Row:
        return self.services.runs.get(run_id)

    def runs(self, workspace: str, status: str | None, limit: int | None) -> list[Row]:
        return self.services.runs.list(workspace, status=status, limit=limit)

    def run_metrics(self, workspace: str, run_id: str) -> dict[str, list[Row]]:
        return self.services.runs.metrics(run_id)

    def log_metrics(self, workspace: str, run_id: str, points: Sequence[Point]) -> None:
        self.services.runs.log_metrics(run_id, points)

    def log_params(self, workspace: str, run_id: str, params: Mapping[str, Any]) -> None:
        self.services.runs.log_params(run_id, params)

    def log_artifact(self, workspace: str, run_id: str, path: Path, name: str | None) -> list[str]:
        return self.services.runs.log_artifact(run_id, path, name)

    def end_run(self, workspace: str, run_id: str, status: str, error: str | None) -> None:
        self.services.runs.set_status(run_id, status, error)

    def cancel_run(self, workspace: str, run_id: str) -> Row:
        from appliance.runs.launcher import Execution

        self._run_in(workspace, run_id)
        return Execution(self.services, run_id).cancel()

    def run_logs(self, workspace: str, run_id: str, tail: int) -> str:
        from appliance.runs.launcher import Execution

        self._run_in(workspace, run_id)
        return Execution(self.services, run_id).logs(tail)

    def _run_in(self, workspace: str, run_id: str) -> Row:
        """The run, when it belongs to `workspace` (as the server's routes check it)."""
        ws = self.services.workspaces.get(workspace)
        try:
            run = self.services.runs.get(run_id)
        except NotFound:
            run = None
        if run is None or run["workspace_id"] != ws["id"]:
            raise NotFound(f"no run '{run_id}' in workspace '{workspace}'")
        return run

    def add_dataset(self, workspace: str, name: str, folder: Path) -> Row:
        return self.services.datasets.add(workspace, name, folder).version

    def datasets(self, workspace: str) -> list[Row]:
        return self.services.datasets.list(workspace)

    def dataset(self, workspace: str, ref: str) -> Row:
        return self.services.datasets.get(workspace, ref)

    def dataset_diff(self, workspace: str, ref_a: str, ref_b: str) -> Row:
        return self.services.datasets.diff(workspace, ref_a, ref_b)

    def models(self, workspace: str) -> list[Row]:
        return self.services.models.list(workspace)

    def model_versions(self, workspace: str, name: str) -> list[Row]:
        return self.services.models.versions(workspace, name)

    def model_version(self, workspace: str, ref: str) -> Row:
        return self.services.models.get(workspace, ref)

    def register_model(
        self, workspace: str, run: Row, folder: Path, name: str, *,
        metrics: Mapping[str, float], recipe: str | None, task: str | None,
    ) -> Row:  # fmt: skip
        from appliance.models.intake import register_folder

        known = {r["name"] for r in self.services.recipes.list(workspace)}
        recipe = recipe or (run["recipe"] if run["recipe"] in known else None)
        return register_folder(
            self.services, workspace, name, folder, recipe=recipe, task=task,
            metrics=dict(metrics), run_id=run["id"], dataset_id=run["dataset_id"],
            dataset_digest=run["dataset_digest"],
            parent_version_id=run["parent_model_version_id"],
        )  # fmt: skip

    def set_alias(self, workspace: str, name: str, alias: str, version: int) -> Row:
        return self.services.models.set_alias(workspace, f"{name}@{version}", alias)

    def unset_alias(self, workspace: str, name: str, alias: str) -> None:
        self.services.models.unset_alias(workspace, name, alias)

    def promote(self, workspace: str, name: str, version: int, alias: str, force: bool) -> Row:
        from appliance.models.promotion import promote

        result = promote(self.services, workspace, f"{name}@{version}", alias, force=force)
        return {
            "candidate": self.services.models.get(workspace, f"{name}@{version}"),
            "current": result.current, "metric": result.metric,
            "candidate_value": result.candidate_value, "current_value": result.current_value,
            "dataset": result.dataset, "rows": result.rows, "forced": result.forced,
            "also": [{"metric": m, "candidate": c, "current": p} for m, c, p in result.also],
            "summary": result.summary(),
        }  # fmt: skip

    def model_folder(self, version: Row) -> Path:
        return self.services.models.folder(version)

    def deploy(self, body: Mapping[str, Any]) -> Row:
        return self._via_server("/v1/deployments", body, "deploy")

    def predict(self, endpoint: str, body: Mapping[str, Any]) -> Row:
        path = f"/v1/endpoints/{quote(endpoint, safe='')}/predict"
        return self._via_server(path, body, "predict")

    def feedback(self, prediction_id: str, body: Mapping[str, Any]) -> Row:
        path = f"/v1/predictions/{quote(prediction_id, safe='')}/feedback"
        if self._find_server() is not None:
            return self._via_server(path, body, "feedback")
        # No server: every prediction it captured was written before it stopped.
        return self.services.predictions.add_feedback(
            prediction_id, body.get("rating"), body.get("thumb"), body.get("comment", ""),
            body.get("ignored_keywords", []),
        )  # fmt: skip

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.services.close()

    def _find_server(self) -> ServerClient | None:
        if self._server is None:
            from appliance.server.client import ServerClient

            self._server = ServerClient.find(self.services.settings)
        return self._server

    def _via_server(self, path: str, body: Mapping[str, Any], what: str) -> Row:
        from appliance.server.client import ServerRefused

        server = self._find_server()
        if server is None:
            raise Unreachable(
                f"no server runs for the home {self.where}, and {what} needs one: start "
                "`appliance serve` (or `appliance up`) there"
            )
        try:
            answer: Row = server.post_json(path, dict(body))
        except ServerRefused as exc:
            raise refusal(exc.status, str(exc).removeprefix("the server refused: ")) from None
        except ApplianceError as exc:  # it stopped answering: the next call looks again
            self._server = None
            server.close()
            raise Unreachable(str(exc)) from None
        return answer
