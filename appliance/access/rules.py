"""The rule each HTTP route declares, as its handler's `opt`:

    @get("/v1/workspaces/{workspace:str}/runs", opt=allow(Role.viewer))
    @post("/v1/workspaces/{workspace:str}/datasets/{name:str}",
          opt=allow(Role.developer, content_types=TAR_OR_FORM))

A route with a `{workspace}` path parameter is checked against the user's workspace by the
guard; a route whose workspace is that of a thing it names (an endpoint, a prediction)
declares `scope=(KIND, PARAM)`, e.g. `scope=("endpoint", "name")`, and the guard finds the
workspace of the path parameter PARAM (`appliance/server/scopes.py`); a route that reads its
workspace from the body calls `principal.require_workspace(...)` itself; one that spans
workspaces declares `every_workspace=True`. `public()` is for the health probes only. A route
without a rule makes `create_app` fail, so a new route cannot be left open by forgetting."""

from __future__ import annotations

from typing import Any

from appliance.access.roles import Role

RULE = "access"
JSON = ("application/json",)
BY_TASK = None
"""Predict routes: the endpoint's task says which types it reads (multipart, JSON, `image/*`
or `text/plain` raw bodies, the Open Inference Protocol's binary extension), and the route
refuses the others with 415 itself."""
TAR_OR_FORM = ("application/x-tar", "application/gzip", "multipart/form-data")


def allow(
    role: Role,
    *,
    content_types: tuple[str, ...] | None = JSON,
    every_workspace: bool = False,
    scope: tuple[str, str] | None = None,
    **opt: Any,
) -> dict[str, Any]:
    """The opt of a route that needs `role` or above; a write sends one of `content_types`
    (or no body), or what its task reads with `BY_TASK`."""
    return {
        RULE: role,
        "content_types": content_types,
        "every_workspace": every_workspace,
        "scope": scope,
        **opt,
    }


def public(**opt: Any) -> dict[str, Any]:
    """The opt of a route anyone may read, with or without a token (the health probes)."""
    return {RULE: None, "content_types": JSON, "every_workspace": False, "scope": None, **opt}


def accepts(content_types: tuple[str, ...], media: str) -> bool:
    return any(
        media == kind or (kind.endswith("/*") and media.startswith(kind[:-1]))
        for kind in content_types
    )
