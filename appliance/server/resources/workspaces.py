"""Workspaces over HTTP: list (a user limited to one workspace sees only it), create, show, each
with what it holds, as `appliance workspace list|create|show` answer."""

from __future__ import annotations

from typing import Any

import anyio
import msgspec
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from appliance.access.roles import LOCAL, Principal, Role
from appliance.access.rules import allow
from appliance.server.answers import Answer
from appliance.services import Services


class WorkspaceRequest(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    description: str = ""


class Workspace(Answer):
    """A workspace (`appliance/workspaces.py`) with the number of each thing it holds."""

    id: str
    name: str
    description: str
    created_by: str
    """'' for one a person created; the program's name for one it made (the demo)."""
    created_at: str
    datasets: int
    runs: int
    models: int
    deployments: int


def principal(request: Request[Any, Any, Any]) -> Principal:
    """Who the request acts as (the access guard sets it; without one, the box itself)."""
    found = request.scope.get("user")
    return found if isinstance(found, Principal) else LOCAL


class WorkspaceController(Controller):
    path = "/v1/workspaces"
    tags = ["workspaces"]

    @get("/", opt=allow(Role.viewer, every_workspace=False))
    async def list_workspaces(
        self, request: Request[Any, Any, Any], services: NamedDependency[Services]
    ) -> list[Workspace]:
        """Every workspace with what it holds; a user limited to one workspace sees only it."""
        rows = await anyio.to_thread.run_sync(services.workspaces.list)
        who = principal(request)
        return msgspec.convert([r for r in rows if who.sees(r["name"])], list[Workspace])

    @post("/", opt=allow(Role.developer, every_workspace=True), status_code=201)
    async def create_workspace(
        self, services: NamedDependency[Services], data: JSONBody[WorkspaceRequest]
    ) -> Workspace:
        """Create a workspace; a taken name is 409, a name the CLI would refuse is 400."""

        def create() -> dict[str, Any]:
            services.workspaces.create(data.name, data.description)
            return services.workspaces.show(data.name)

        return msgspec.convert(await anyio.to_thread.run_sync(create), Workspace)

    @get("/{workspace:str}", opt=allow(Role.viewer))
    async def show_workspace(
        self, services: NamedDependency[Services], workspace: FromPath[str]
    ) -> Workspace:
        """One workspace with what it holds (`appliance workspace show`)."""
        row = await anyio.to_thread.run_sync(services.workspaces.show, workspace)
        return msgspec.convert(row, Workspace)
