"""`Workspace`: one workspace of the connected appliance, its runs, datasets and models, and
the endpoints it deploys."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance.client.backend import Row
from appliance.client.model import ModelVersion
from appliance.client.run import ActiveRun

if TYPE_CHECKING:
    from appliance.client.connection import Client


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
        row = self.client.backend.create_run(
            self.name, recipe=recipe, params=params or {}, name=name, dataset=dataset, seed=seed
        )
        return ActiveRun(self, row["id"])

    def runs(self, status: str | None = None, limit: int | None = None) -> list[Row]:
        """The newest first; every one without a `limit` (remotely: up to 10,000)."""
        return self.client.backend.runs(self.name, status, limit)

    def run(self, run_id: str) -> ActiveRun:
        """A run by its id, to read, cancel or read the logs of (one started elsewhere)."""
        self.client.backend.run(self.name, run_id)  # NotFound for an unknown one
        return ActiveRun(self, run_id)

    def add_dataset(self, name: str, folder: str | Path) -> Row:
        """Add the imagefolder `folder` as the next version of dataset `name`."""
        return self.client.backend.add_dataset(self.name, name, Path(folder).expanduser())

    def datasets(self) -> list[Row]:
        return self.client.backend.datasets(self.name)

    def dataset(self, ref: str) -> Row:
        """`NAME` (its latest version) or `NAME@3`."""
        return self.client.backend.dataset(self.name, ref)

    def dataset_diff(self, a: str, b: str) -> Row:
        """What changed from version `a` to version `b` (`photos@1`, `photos@2`): files added,
        removed and changed, rows relabelled, label counts, columns (`appliance dataset diff`)."""
        return self.client.backend.dataset_diff(self.name, a, b)

    def models(self) -> list[Row]:
        return self.client.backend.models(self.name)

    def remove_alias(self, name: str, alias: str) -> None:
        """Take `alias` off model `name` (NotFound when it has none)."""
        self.client.backend.unset_alias(self.name, name, alias)

    def model_versions(self, name: str) -> list[ModelVersion]:
        return [
            ModelVersion(self, row) for row in self.client.backend.model_versions(self.name, name)
        ]

    def model_version(self, ref: str) -> ModelVersion:
        """`NAME`, `NAME@3` or `NAME@production`."""
        return ModelVersion(self, self.client.backend.model_version(self.name, ref))

    def load_model(self, ref: str) -> Any:
        return self.model_version(ref).load()

    def deploy(
        self, endpoint: str, ref: str, *, quantization: str = "none", device: str = "auto",
        max_batch_size: int = 8, max_batch_wait_ms: int = 5,
    ) -> Row:  # fmt: skip
        """Serve the version `ref` (`NAME@3`, `NAME@production`) at `endpoint`: loaded and
        warmed beside what it serves now, then switched. Needs the server (locally: the home's
        running server); answers the deployment."""
        return self.client.backend.deploy(
            {"workspace": self.name, "endpoint": endpoint, "model": ref,
             "quantization": quantization, "device": device, "max_batch_size": max_batch_size,
             "max_batch_wait_ms": max_batch_wait_ms}
        )  # fmt: skip

    def predict(self, endpoint: str, **inputs: Any) -> Row:
        """As `Client.predict`."""
        return self.client.predict(endpoint, **inputs)

    def feedback(self, prediction_id: str, **rating: Any) -> Row:
        """As `Client.feedback`."""
        return self.client.feedback(prediction_id, **rating)
