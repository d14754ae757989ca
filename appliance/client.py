"""The Python client for notebooks and scripts, modelled on MLflow's tracking API:

import appliance
ws = appliance.connect().workspace("classified-ads")
with ws.start_run(recipe="notebook", params={"lr": 3e-4}) as run:
    run.log_metric("loss", 0.42, step=1)
    run.register_model("out/model", "captioner")
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from appliance.errors import Conflict
from appliance.services import Services


class Client:
    def __init__(self, services: Services):
        self.services = services

    @classmethod
    def open(cls, home: str | None = None, **overrides: Any) -> Client:
        return cls(Services.open(home=home, **overrides))

    def workspace(self, name: str, create: bool = True) -> Workspace:
        """The workspace `name`; created when missing unless `create=False`."""
        if create:
            self.services.workspaces.ensure(name)
        else:
            self.services.workspaces.get(name)
        return Workspace(self, name)

    def workspaces(self) -> list[Workspace]:
        return [Workspace(self, row["name"]) for row in self.services.workspaces.list()]

    def close(self) -> None:
        self.services.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Workspace:
    client: Client = field(repr=False)
    name: str

    def start_run(
        self,
        recipe: str = "",
        params: dict[str, Any] | None = None,
        name: str = "",
        dataset: str | None = None,
        seed: int | None = None,
    ) -> ActiveRun:
        """A run that ends when its `with` block does: succeeded, or failed with the error."""
        lineage: dict[str, Any] = {"seed": seed}
        if dataset is not None:
            version = self.client.services.datasets.get(self.name, dataset)
            lineage.update(dataset_id=version["dataset_id"], dataset_digest=version["digest"])
        row = self.client.services.runs.create(
            self.name, recipe=recipe, name=name, params=params, **lineage
        )
        return ActiveRun(self, row["id"])

    def runs(self, status: str | None = None) -> list[dict[str, Any]]:
        return self.client.services.runs.list(self.name, status=status)

    def add_dataset(self, name: str, folder: str | Path) -> dict[str, Any]:
        return self.client.services.datasets.add(self.name, name, Path(folder)).version

    def datasets(self) -> list[dict[str, Any]]:
        return self.client.services.datasets.list(self.name)

    def models(self) -> list[dict[str, Any]]:
        return self.client.services.models.list(self.name)

    def model_versions(self, name: str) -> list[ModelVersion]:
        models = self.client.services.models
        return [ModelVersion(self, row) for row in models.versions(self.name, name)]

    def model_version(self, ref: str) -> ModelVersion:
        """`NAME`, `NAME@3` or `NAME@production`."""
        return ModelVersion(self, self.client.services.models.get(self.name, ref))

    def load_model(self, ref: str) -> Any:
        return self.model_version(ref).load()


@dataclass
class ActiveRun:
    workspace: Workspace = field(repr=False)
    id: str
    _ended: bool = field(default=False, repr=False)

    @property
    def _runs(self) -> Any:
        return self.workspace.client.services.runs

    @property
    def info(self) -> dict[str, Any]:
        return self._runs.get(self.id)

    def log_metric(self, key: str, value: float, step: int = 0) -> None:
        self._runs.log_metric(self.id, key, value, step)

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        self._runs.log_metrics(self.id, [(k, v, step) for k, v in metrics.items()])

    def log_param(self, key: str, value: Any) -> None:
        self._runs.log_params(self.id, {key: value})

    def log_params(self, params: dict[str, Any]) -> None:
        self._runs.log_params(self.id, params)

    def log_artifact(self, path: str | Path, name: str | None = None) -> list[str]:
        return self._runs.log_artifact(self.id, Path(path), name)

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
        `recipe`'s load() when one is named, else by the Hugging Face runtime for `task`
        (default: read from its config.json)."""
        from appliance.models.intake import register_folder

        run = self.info
        services = self.workspace.client.services
        known = {r["name"] for r in services.recipes.list(self.workspace.name)}
        recipe = recipe or (run["recipe"] if run["recipe"] in known else None)
        row = register_folder(
            services,
            self.workspace.name,
            name,
            Path(folder),
            recipe=recipe,
            task=task,
            metrics=metrics if metrics is not None else self._runs.latest_metrics(self.id),
            run_id=self.id,
            dataset_id=run["dataset_id"],
            dataset_digest=run["dataset_digest"],
            parent_version_id=run["parent_model_version_id"],
        )
        return ModelVersion(self.workspace, row)

    def end(self, status: str = "succeeded", error: str | None = None) -> None:
        if not self._ended:
            self._runs.set_status(self.id, status, error)
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


@dataclass
class ModelVersion:
    workspace: Workspace = field(repr=False)
    record: dict[str, Any] = field(repr=False)

    @property
    def name(self) -> str:
        return str(self.record["name"])

    @property
    def version(self) -> int:
        return int(self.record["version"])

    @property
    def metrics(self) -> dict[str, float]:
        return dict(self.record["metrics"])

    @property
    def aliases(self) -> list[str]:
        return list(self.record["aliases"])

    @property
    def path(self) -> Path:
        return self.workspace.client.services.models.folder(self.record)

    def load(self) -> Any:
        """The transformers model, loaded from the version's folder (imports torch)."""
        from appliance.models.loading import load_pretrained

        return load_pretrained(self.path)

    def __repr__(self) -> str:
        return f"ModelVersion({self.name}@{self.version}, aliases={self.aliases})"
