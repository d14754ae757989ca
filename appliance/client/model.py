"""`ModelVersion`: one registered version, its metrics and aliases, and its files here to load
(for a remote client, downloaded once into the cache)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance.client.backend import Row

if TYPE_CHECKING:
    from appliance.client.workspace import Workspace


@dataclass
class ModelVersion:
    workspace: Workspace = field(repr=False)
    record: Row = field(repr=False)

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
        """The version's folder on this machine; a remote client downloads it on first use."""
        return self.workspace.client.backend.model_folder(self.record)

    def set_alias(self, alias: str) -> ModelVersion:
        """Point `alias` at this version (`appliance model promote` is the gated way to
        `production`); answers the version as it is now."""
        backend = self.workspace.client.backend
        backend.set_alias(self.workspace.name, self.name, alias, self.version)
        return ModelVersion(self.workspace, backend.model_version(self.workspace.name, self.ref))

    def promote(self, alias: str = "production", force: bool = False) -> Row:
        """Move `alias` to this version through the evaluation gate, as `appliance model
        promote`: it and the version holding the alias are evaluated on the same held-out rows;
        a worse one is refused (a Conflict naming the scores) unless `force`. Answers what the
        gate measured (`metric`, `candidate_value`, `current_value`, `summary`, ...)."""
        backend = self.workspace.client.backend
        return backend.promote(self.workspace.name, self.name, self.version, alias, force)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def load(self) -> Any:
        """The transformers model, loaded from the version's folder (imports torch)."""
        from appliance.models.loading import load_pretrained

        return load_pretrained(self.path)

    def __repr__(self) -> str:
        return f"ModelVersion({self.name}@{self.version}, aliases={self.aliases})"
