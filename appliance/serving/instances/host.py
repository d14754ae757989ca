"""What instances need from the service that deploys them: the home's settings (a process
instance's worker rebuilds its runtime from them) and a way to record what happened to an
instance in the event log (a crash, a restart)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from appliance.events import record_event
from appliance.services import Services
from appliance.settings import Settings


@dataclass(frozen=True)
class Deployed:
    """Which deployment an instance serves, for its events."""

    workspace: str
    endpoint: str
    version: dict[str, Any]


class InstanceHost:
    def __init__(self, services: Services):
        self._services = services

    @property
    def settings(self) -> Settings:
        return self._services.settings

    def record(self, deployed: Deployed, kind: str, **detail: Any) -> None:
        """An event about one instance (`instance_crashed`, `instance_restarted`, ...)."""
        ws = self._services.workspaces.get(deployed.workspace)
        version = deployed.version
        self._services.registry.write(
            lambda db: record_event(
                db, ws["id"], kind, deployed.endpoint, model_version_id=version["id"],
                model=version["name"], version=version["version"], **detail,
            )
        )  # fmt: skip
