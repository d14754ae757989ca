"""Roles, a ladder: each holds what the ones below it hold.

- viewer reads monitoring and the registry (captured data and feedback included);
- predictor also predicts and gives feedback (the application that calls the model);
- developer also deploys, runs, promotes and manages jobs;
- admin also manages users and whatever spans every workspace.

A user may be limited to one workspace; routes of other workspaces are 403 for it."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from appliance.errors import ApplianceError


class Role(enum.IntEnum):
    viewer = 1
    predictor = 2
    developer = 3
    admin = 4

    @classmethod
    def named(cls, name: str) -> Role:
        try:
            return cls[name]
        except KeyError:
            from appliance.errors import InvalidInput

            raise InvalidInput(
                f"unknown role '{name}': use one of {', '.join(r.name for r in cls)}"
            ) from None


class Forbidden(ApplianceError):
    """Authenticated, but the role or the workspace does not allow it."""

    http_status = 403


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts as: a user, the admin token (`admin`) or the box itself (`local`)."""

    name: str
    role: Role
    workspace: str | None = None  # limited to this workspace; None: every workspace

    def require(self, role: Role) -> None:
        if self.role < role:
            raise Forbidden(
                f"'{self.name}' is a {self.role.name}; this needs the {role.name} role or above"
            )

    def require_workspace(self, workspace: str) -> None:
        if self.workspace is not None and workspace != self.workspace:
            raise Forbidden(
                f"'{self.name}' may use only the workspace '{self.workspace}', not '{workspace}'"
            )

    def require_every_workspace(self) -> None:
        """For what spans workspaces (server metrics, the platform report, users)."""
        if self.workspace is not None:
            raise Forbidden(
                f"'{self.name}' is limited to the workspace '{self.workspace}'; this spans "
                "every workspace"
            )

    def sees(self, workspace: str) -> bool:
        return self.workspace is None or workspace == self.workspace


LOCAL = Principal("local", Role.admin)
"""The CLI and the TUI on the box, and any request to a server that requires no token."""
