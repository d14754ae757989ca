"""Which workspace a thing a route names belongs to, for users limited to one workspace: the
guard asks only for them (`appliance/server/auth.py`), so other requests pay nothing. An
unknown thing is 404, as the route itself would answer: so is a prediction answered but not
yet captured (a moment after its answer), which is 403 for them once it is."""

from __future__ import annotations

from collections.abc import Callable

from appliance.errors import NotFound
from appliance.registry import Registry
from appliance.serving.service import Serving

_SQL = {
    "prediction": "SELECT w.name FROM predictions p JOIN workspaces w ON w.id = p.workspace_id"
    " WHERE p.id = ?",
    "review_item": "SELECT w.name FROM review_items r JOIN workspaces w ON w.id = r.workspace_id"
    " WHERE r.id = ?",
    "job_run": "SELECT w.name FROM job_runs r JOIN jobs j ON j.id = r.job_id"
    " JOIN workspaces w ON w.id = j.workspace_id WHERE r.id = ?",
}


def resolvers(serving: Serving) -> dict[str, Callable[[str], str]]:
    """KIND → the workspace of the thing with that id or name. `endpoint` is answered from
    memory; the others read the registry (the guard calls them on a worker thread)."""
    registry = serving.services.registry
    found: dict[str, Callable[[str], str]] = {"endpoint": serving.find_endpoint}
    for kind, sql in _SQL.items():
        found[kind] = _reader(registry, kind, sql)
    return found


def _reader(registry: Registry, kind: str, sql: str) -> Callable[[str], str]:
    def workspace_of(key: str) -> str:
        rows = registry.query(sql, (key,))
        if not rows:
            raise NotFound(f"no {kind.replace('_', ' ')} '{key}'")
        return str(rows[0]["name"])

    return workspace_of
