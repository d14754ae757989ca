"""Where the demo lives and what it may delete: a home of its own unless one is chosen, and in
any home only a `classified-ads` workspace it made itself (a person's is refused, unless told)."""

from __future__ import annotations

from pathlib import Path

from appliance.demo.options import WORKSPACE
from appliance.errors import Conflict
from appliance.services import Services
from appliance.settings import default_home

CREATED_BY = "demo"
"""The workspaces row's `created_by` that marks the demo's own workspace."""

_HELD = ("datasets", "runs", "models", "deployments")
DESCRIPTION = "made by `appliance demo`; the next demo in this home deletes and remakes it"


def default_demo_home() -> Path:
    """The demo's home when neither --home nor APPLIANCE_HOME chose one: a sibling of the
    platform's default home (e.g. ~/.local/share/appliance-demo), never a folder inside it."""
    home = default_home()
    return home.with_name(f"{home.name}-demo")


def fresh_workspace(services: Services, replace: bool = False) -> str | None:
    """Make the demo's workspace anew: delete the one an earlier demo made, or, only with
    `replace`, one it did not make (else refuse before anything is touched). Says what it
    deleted, if anything."""
    workspaces = services.workspaces
    existing = next((w for w in workspaces.list() if w["name"] == WORKSPACE), None)
    said = None
    if existing is not None:
        if existing["created_by"] != CREATED_BY and not replace:
            held = ", ".join(f"{n} {existing[n]}" for n in _HELD)
            raise Conflict(
                f"the home {services.settings.home} already has a workspace '{WORKSPACE}' that "
                f"the demo did not create; the demo would delete it with all it holds ({held}). "
                "Use another home (appliance --home DIR demo), or add --replace to delete it."
            )
        # The story starts from nothing each time (its jobs and versions would collide).
        workspaces.delete(WORKSPACE, force=True)
        if existing["created_by"] == CREATED_BY:
            said = f"removed the workspace {WORKSPACE} of an earlier demo run"
        else:
            said = f"deleted the workspace {WORKSPACE} the demo had not made (--replace)"
    workspaces.create(WORKSPACE, DESCRIPTION, created_by=CREATED_BY)
    return said
