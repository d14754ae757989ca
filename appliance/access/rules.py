"""The rule each HTTP route declares, as its handler's `opt`:

    @get("/v1/workspaces/{workspace:str}/runs", opt=allow(Role.viewer))
    @post("/v1/workspaces/{workspace:str}/datasets/{name:str}",
          opt=allow(Role.developer, content_types=TAR_OR_FORM))

A route with a `{workspace}` path parameter is checked against the user's workspace by the
guard; a route that finds its workspace otherwise (an endpoint, a prediction id) calls
`principal.require_workspace(...)` itself, and one that spans workspaces declares
`every_workspace=True`. `public()` is for the health probes only. A route without a rule makes
`create_app` fail, so a new route cannot be left open by forgetting."""

from __future__ import annotations

from typing import Any

from appliance.access.roles import Role

RULE = "access"
JSON = ("application/json",)
PREDICT_INPUTS = ("application/json", "multipart/form-data", "image/*")
TAR_OR_FORM = ("application/x-tar", "application/gzip", "multipart/form-data")


def allow(
    role: Role,
    *,
    content_types: tuple[str, ...] = JSON,
    every_workspace: bool = False,
    **opt: Any,
) -> dict[str, Any]:
    """The opt of a route that needs `role` or above; a write sends one of `content_types`
    (or no body)."""
    return {
        RULE: role,
        "content_types": content_types,
        "every_workspace": every_workspace,
        **opt,
    }


def public(**opt: Any) -> dict[str, Any]:
    """The opt of a route anyone may read, with or without a token (the health probes)."""
    return {RULE: None, "content_types": JSON, "every_workspace": False, **opt}


def accepts(content_types: tuple[str, ...], media: str) -> bool:
    return any(
        media == kind or (kind.endswith("/*") and media.startswith(kind[:-1]))
        for kind in content_types
    )
